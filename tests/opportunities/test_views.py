"""Opportunity pages: create, edit, close with a reason, products as line items, the filtered list,
and the pipeline and product set-up, with access by role and across tenants."""

from decimal import Decimal

import pytest
from django_tenants.utils import schema_context

from contacts import services as contact_services
from crm.users.models import Role, User
from crm.users.services import user_create
from opportunities import services
from opportunities.models import LineItem, Opportunity, Pipeline, Product, Stage, StageChange
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def log_in(client, user):
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)
    return client


@pytest.fixture
def account(sales):
    return contact_services.account_create(actor=sales, name="Initech")


@pytest.fixture
def deal(sales, account, stages):
    return services.opportunity_create(
        actor=sales,
        name="Initech renewal",
        account=account,
        stage=stages["Qualification"],
        amount=Decimal("1000"),
    )


@pytest.fixture
def widget(admin):
    return services.product_create(
        actor=admin, name="Widget", sku="W-1", product_type="Hardware", unit_price=Decimal("250")
    )


def test_every_new_tenant_starts_with_the_sales_pipeline(in_alpha):
    pipeline = Pipeline.objects.get()
    assert [(s.name, s.probability) for s in pipeline.stages.order_by("position")] == [
        ("Qualification", 10),
        ("Needs analysis", 25),
        ("Proposal", 50),
        ("Negotiation", 75),
        ("Closed won", 100),
        ("Closed lost", 0),
    ]


def test_a_salesperson_creates_a_deal_from_the_account_page(client, sales, account, stages):
    peter = contact_services.contact_create(actor=sales, first_name="Peter", account=account)
    other = contact_services.contact_create(actor=sales, first_name="Elsewhere")
    log_in(client, sales)

    form = client.get(f"/opportunities/new/?account={account.pk}", **ALPHA)
    assert list(form.context["form"].fields["primary_contact"].queryset) == [peter]
    wrong = client.post(
        "/opportunities/new/",
        {
            "name": "Big deal",
            "account": account.pk,
            "primary_contact": other.pk,
            "stage": stages["Proposal"].pk,
            "amount": "abc",
            "currency": "USD",
            "forecast_category": "pipeline",
        },
        **ALPHA,
    )
    assert wrong.status_code == 200
    assert set(wrong.context["form"].errors) == {"primary_contact", "amount"}
    assert not Opportunity.objects.exists()

    made = client.post(
        "/opportunities/new/",
        {
            "name": "Big deal",
            "account": account.pk,
            "primary_contact": peter.pk,
            "stage": stages["Proposal"].pk,
            "amount": "5000",
            "currency": "EUR",
            "forecast_category": "best_case",
            "expected_close": "2026-12-31",
        },
        **ALPHA,
    )

    deal = Opportunity.objects.get()
    assert made.url == f"/opportunities/{deal.pk}/"
    assert (deal.owner, deal.primary_contact, deal.amount) == (sales, peter, Decimal("5000"))
    assert StageChange.objects.get(opportunity=deal).to_stage == stages["Proposal"]
    page = client.get(made.url, **ALPHA)
    assert b"Big deal" in page.content and b"5,000.00 EUR" in page.content


def test_editing_a_deal_audits_the_fields_and_records_a_stage_move(client, sales, deal, stages):
    log_in(client, sales)

    client.post(
        f"/opportunities/{deal.pk}/edit/",
        {
            "name": "Initech renewal",
            "account": deal.account_id,
            "stage": stages["Negotiation"].pk,
            "amount": "1200",
            "currency": "USD",
            "forecast_category": "commit",
            "next_step": "Send <b>contract</b>",
            "owner": sales.pk,
        },
        **ALPHA,
    )

    deal.refresh_from_db()
    assert (deal.stage, deal.amount, deal.next_step) == (
        stages["Negotiation"],
        Decimal("1200"),
        "Send <b>contract</b>",
    )
    fields, move = AuditEntry.objects.filter(object_id=deal.pk, action="updated").order_by("id")
    assert set(fields.changes) == {"amount", "forecast_category", "next_step"}
    assert move.changes == {"stage": [stages["Qualification"].pk, stages["Negotiation"].pk]}
    moves = StageChange.objects.filter(opportunity=deal, from_stage=stages["Qualification"])
    assert moves.get().to_stage == stages["Negotiation"]
    page = client.get(f"/opportunities/{deal.pk}/", **ALPHA)
    assert b"Send &lt;b&gt;contract&lt;/b&gt;" in page.content


def test_closing_asks_for_a_reason_and_records_it(client, sales, deal, stages, alpha):
    log_in(client, sales)

    client.post(f"/opportunities/{deal.pk}/close/", {"outcome": "lost", "reason": ""}, **ALPHA)
    with schema_context(alpha.schema_name):
        deal.refresh_from_db()
    assert deal.closed_at is None

    client.post(
        f"/opportunities/{deal.pk}/close/",
        {"outcome": "lost", "reason": "Went with a competitor"},
        **ALPHA,
    )

    deal.refresh_from_db()
    assert deal.stage == stages["Closed lost"] and deal.closed_at
    assert deal.close_reason == "Went with a competitor"
    assert TimelineEntry.objects.filter(
        account=deal.account,
        summary="Initech renewal moved from Qualification to Closed lost: Went with a competitor",
    ).exists()
    reopened = services.opportunity_move_stage(
        actor=sales, opportunity=deal, stage=stages["Proposal"]
    )
    assert (reopened.closed_at, reopened.close_reason) == (None, "")


def test_line_items_make_the_amount(client, sales, deal, widget):
    log_in(client, sales)

    client.post(
        f"/opportunities/{deal.pk}/line-items/",
        {"product": widget.pk, "quantity": "3", "discount_percent": "10"},
        **ALPHA,
    )
    client.post(
        f"/opportunities/{deal.pk}/line-items/",
        {"product": widget.pk, "quantity": "1", "unit_price": "99.99", "discount_percent": "0"},
        **ALPHA,
    )
    bad = client.post(
        f"/opportunities/{deal.pk}/line-items/",
        {"product": widget.pk, "quantity": "-2", "discount_percent": "150"},
        **ALPHA,
    )

    assert bad.status_code == 302 and LineItem.objects.count() == 2
    deal.refresh_from_db()
    assert deal.amount == Decimal("774.99")  # 3 x 250 less 10% + 99.99
    first = LineItem.objects.order_by("id").first()
    client.post(f"/opportunities/{deal.pk}/line-items/{first.pk}/remove/", **ALPHA)
    deal.refresh_from_db()
    assert deal.amount == Decimal("99.99")
    edit = client.get(f"/opportunities/{deal.pk}/edit/", **ALPHA)
    assert edit.context["form"].fields["amount"].disabled


def test_the_list_filters_sorts_and_pages(client, sales, account, stages, deal):
    for i in range(55):
        services.opportunity_create(
            actor=sales,
            name=f"Deal {i:02}",
            account=account,
            stage=stages["Proposal"],
            amount=Decimal(i),
        )
    services.opportunity_move_stage(actor=sales, opportunity=deal, stage=stages["Closed won"])
    log_in(client, sales)

    first = client.get("/opportunities/?sort=name", **ALPHA)
    second = client.get(
        f"/opportunities/?sort=name&after={first.context['page'].next_cursor}", **ALPHA
    )
    won = client.get("/opportunities/?status=won", **ALPHA)
    proposal = client.get(f"/opportunities/?stage={stages['Proposal'].pk}&q=deal 5", **ALPHA)
    nonsense = client.get("/opportunities/?stage=nope&closes_from=yesterday", **ALPHA)

    names = [o.name for o in first.context["page"].rows + second.context["page"].rows]
    assert names == sorted(names) and len(names) == 56
    assert [o.name for o in won.context["page"].rows] == ["Initech renewal"]
    assert {o.name for o in proposal.context["page"].rows} == {
        "Deal 50",
        "Deal 51",
        "Deal 52",
        "Deal 53",
        "Deal 54",
    }
    assert nonsense.status_code == 200 and nonsense.context["page"].total == 56
    assert b"Some filters were not understood" in nonsense.content


def test_the_list_page_runs_a_bounded_number_of_queries(
    client, sales, account, stages, django_assert_max_num_queries
):
    for i in range(30):
        services.opportunity_create(
            actor=sales, name=f"Deal {i}", account=account, stage=stages["Proposal"]
        )
    log_in(client, sales)
    with django_assert_max_num_queries(12):
        client.get("/opportunities/", **ALPHA)


def test_a_manager_edits_the_stages_of_a_pipeline(client, admin, deal, stages):
    log_in(client, admin)
    pipeline = stages["Qualification"].pipeline
    form = client.get(f"/opportunities/pipelines/{pipeline.pk}/", **ALPHA).context["stages"]
    rows = [f.initial for f in form.forms if f.initial]
    data = {"name": "Sales", "stages-TOTAL_FORMS": len(rows) + 1, "stages-INITIAL_FORMS": len(rows)}
    for i, row in enumerate(rows):
        data.update({f"stages-{i}-{k}": v for k, v in row.items() if v is not False})
    # Swap the first two stages, rename one, delete the unused "Needs analysis", add "Trial".
    data["stages-0-ORDER"], data["stages-2-ORDER"] = 2, 1
    data["stages-3-name"] = "Negotiation & legal"
    data["stages-1-DELETE"] = "on"
    data.update({"stages-6-name": "Trial", "stages-6-probability": 60, "stages-6-ORDER": 4})

    response = client.post(f"/opportunities/pipelines/{pipeline.pk}/", data, **ALPHA)

    assert response.status_code == 302, response.context["form"].errors
    assert [(s.name, s.probability) for s in pipeline.stages.order_by("position")] == [
        ("Proposal", 50),
        ("Qualification", 10),
        ("Negotiation & legal", 75),
        ("Trial", 60),
        ("Closed won", 100),
        ("Closed lost", 0),
    ]
    deal.refresh_from_db()
    assert deal.stage.name == "Qualification"

    # The stage the deal is in cannot be deleted; nothing changes.
    data = {
        "name": "Sales",
        "stages-TOTAL_FORMS": 1,
        "stages-INITIAL_FORMS": 1,
        "stages-0-id": deal.stage_id,
        "stages-0-name": "Qualification",
        "stages-0-probability": 10,
        "stages-0-DELETE": "on",
    }
    refused = client.post(f"/opportunities/pipelines/{pipeline.pk}/", data, **ALPHA)
    assert refused.status_code == 200
    assert "rename it instead" in str(refused.context["form"].non_field_errors())
    assert Stage.objects.filter(pk=deal.stage_id).exists()


def test_a_new_pipeline_needs_an_open_stage_and_valid_probabilities(client, admin):
    log_in(client, admin)
    base = {"name": "Renewals", "stages-TOTAL_FORMS": 2, "stages-INITIAL_FORMS": 0}

    only_won = client.post(
        "/opportunities/pipelines/new/",
        {
            **base,
            "stages-0-name": "Won",
            "stages-0-probability": 100,
            "stages-0-is_won": "on",
            "stages-1-name": "Bad",
            "stages-1-probability": 140,
        },
        **ALPHA,
    )
    assert only_won.status_code == 200 and not Pipeline.objects.filter(name="Renewals").exists()
    made = client.post(
        "/opportunities/pipelines/new/",
        {
            **base,
            "stages-0-name": "Talking",
            "stages-0-probability": 20,
            "stages-1-name": "Renewed",
            "stages-1-probability": 100,
            "stages-1-is_won": "on",
        },
        **ALPHA,
    )
    assert made.status_code == 302
    renewals = Pipeline.objects.get(name="Renewals")
    assert [s.name for s in renewals.stages.order_by("position")] == ["Talking", "Renewed"]


def test_products_are_managed_by_managers_and_admins_only(client, admin, sales):
    log_in(client, sales)
    assert client.get("/opportunities/products/", **ALPHA).status_code == 403
    assert client.get("/opportunities/pipelines/", **ALPHA).status_code == 403
    client.post("/logout/", **ALPHA)
    log_in(client, admin)

    bad = client.post(
        "/opportunities/products/new/",
        {"name": "Gadget", "unit_price": "-1", "currency": "USD"},
        **ALPHA,
    )
    good = client.post(
        "/opportunities/products/new/",
        {"name": "Gadget", "unit_price": "19.50", "currency": "USD", "is_active": "on"},
        **ALPHA,
    )

    assert bad.status_code == 200 and "unit_price" in bad.context["form"].errors
    assert good.status_code == 302 and Product.objects.get().unit_price == Decimal("19.50")


def test_deals_of_another_team_and_another_tenant_are_404(client, sales, deal, alpha, beta):
    rival = user_create(
        email="rival@alpha.test", password=PASSWORD, full_name="Rival", role=Role.SALES
    )
    log_in(client, rival)
    for path in (f"/opportunities/{deal.pk}/", f"/opportunities/{deal.pk}/edit/"):
        assert client.get(path, **ALPHA).status_code == 404
    assert (
        client.post(
            f"/opportunities/{deal.pk}/close/", {"outcome": "won", "reason": "x"}, **ALPHA
        ).status_code
        == 404
    )

    # Beta's admin, logged in on beta's host, finds nothing of alpha's under the same ids.
    with schema_context(beta.schema_name):
        beta_admin = User.objects.get(email="admin@beta.test")
    client.post("/logout/", **ALPHA)
    client.post("/login/", {"username": beta_admin.email, "password": PASSWORD}, **BETA)
    assert client.get(f"/opportunities/{deal.pk}/", **BETA).status_code == 404
    listing = client.get("/opportunities/", **BETA)
    assert listing.status_code == 200 and not listing.context["page"].rows
    with schema_context(alpha.schema_name):
        deal.refresh_from_db()
    assert deal.closed_at is None
