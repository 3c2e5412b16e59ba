"""Marketing results and customer size by source: the numbers on a small data set whose right
answers are worked out by hand below, the rollups' incremental refresh, the pages by role and
tenant, their CSV and what bad filters get.

The data set (all in 2026, UTC), used by test_costs.py too:

Campaigns (dates, actual cost): "Spring mail" (e-mail, Jan-Feb, 6,000), "Autumn mail" (e-mail,
from 15 Jun), "Webinar" (web, the whole year, 1,200), "Expo" (event, 1-10 Mar) and "Dud ad"
(advertising, June, 500: people targeted, one opened, nobody engaged).

Acme (North, customer) - Ann, source "Referral":
    Spring mail: clicked, 10 Jan  | Webinar: filled its form 5 Feb (member since 6 Feb)
    Expo: responded, 1 Mar        -> three touches, lead on 10 Jan
  opp2 created 20 Feb, 3,000, open (touches before it: Spring mail, Webinar)
  opp1 created 15 Mar, 9,000, won 1 May: Acme's first win (Spring mail, Webinar, Expo)
  opp4 created 1 Jun, 1,000, won 20 Jun (Spring mail, Webinar, Expo)
Beta Corp (South, partner) - opp3 has no primary contact, so both its people count:
    Bob, source "expo" (the Expo campaign in another case), created 20 Jan
    Cid: Webinar responded 1 Feb; Spring mail clicked 1 Apr (after opp3 was created)
  opp3 created 1 Mar, 5,000, won 15 Apr: Beta's first win (Expo via Bob, Webinar via Cid)
Dee: Autumn mail clicked 1 Jul; Dud ad targeted and opened (neither is a touch but the click).
Gamma (East) - Eve, source "Advertising", no touch: opp5 created 1 Jul, 2,000, won 1 Aug.
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignMember
from campaigns.services import campaign_create
from contacts.models import Account, Contact
from contacts.services import account_create, contact_create
from crm.users.models import Role, User
from crm.users.services import user_create
from leads.models import FormSubmission, LeadForm
from opportunities.models import Opportunity, Stage
from opportunities.services import opportunity_create
from reports.attribution import marketing_rollup_refresh
from reports.filters import period_of
from reports.marketing import Attribution, customer_size, marketing_results
from reports.models import MarketingCredit, RollupState
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}
YEAR = {"start": date(2026, 1, 1), "end": date(2026, 12, 31)}
THIRD = Decimal(1) / 3


def at(month: int, day: int) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


def member(campaign, contact, status, when):
    row = CampaignMember.objects.create(campaign=campaign, contact=contact, status=status)
    CampaignMember.objects.filter(pk=row.pk).update(updated_at=when)


def opportunity(actor, name, account, amount, created, *, contact=None, won=None):
    stage = Stage.objects.get(name="Closed won" if won else "Qualification")
    made = opportunity_create(
        actor=actor,
        name=name,
        account=account,
        primary_contact=contact,
        stage=stage,
        amount=Decimal(amount),
    )
    Opportunity.objects.filter(pk=made.pk).update(created_at=created, closed_at=won)
    return made


def person(actor, first, account=None, *, source="", created):
    made = contact_create(
        actor=actor,
        first_name=first,
        email=f"{first.lower()}@example.com",
        account=account,
        source=source,
        territory=account.territory if account else "",
        customer_type=account.customer_type if account else "prospect",
    )
    Contact.objects.filter(pk=made.pk).update(created_at=created)
    return made


def build_data_set() -> dict:
    """The data set of the module's docstring, in the current tenant; then the rollups."""
    admin = User.objects.get(email="admin@alpha.test")
    campaigns = {
        name: campaign_create(
            actor=admin,
            name=name,
            kind=kind,
            starts_on=starts,
            ends_on=ends,
            actual_cost=Decimal(cost),
        )
        for name, kind, starts, ends, cost in (
            ("Spring mail", Campaign.Kind.EMAIL, date(2026, 1, 1), date(2026, 2, 28), 6000),
            ("Autumn mail", Campaign.Kind.EMAIL, date(2026, 6, 15), None, 0),
            ("Webinar", Campaign.Kind.WEB, date(2026, 1, 1), date(2026, 12, 31), 1200),
            ("Expo", Campaign.Kind.EVENT, date(2026, 3, 1), date(2026, 3, 10), 0),
            ("Dud ad", Campaign.Kind.ADVERTISING, date(2026, 6, 1), date(2026, 6, 30), 500),
        )
    }
    spring, autumn, webinar, expo, dud = campaigns.values()
    acme = account_create(actor=admin, name="Acme", territory="North", customer_type="customer")
    beta = account_create(actor=admin, name="Beta Corp", territory="South", customer_type="partner")
    gamma = account_create(actor=admin, name="Gamma", territory="East")

    ann = person(admin, "Ann", acme, source="Referral", created=at(1, 2))
    member(spring, ann, "clicked", at(1, 10))
    form = LeadForm.objects.create(name="Webinar sign-up", campaign=webinar)
    submission = FormSubmission.objects.create(form=form, contact=ann, status="processed")
    FormSubmission.objects.filter(pk=submission.pk).update(
        submitted_at=at(2, 5), processed_at=at(2, 6)
    )
    member(webinar, ann, "responded", at(2, 6))
    member(expo, ann, "responded", at(3, 1))

    bob = person(admin, "Bob", beta, source="expo", created=at(1, 20))
    cid = person(admin, "Cid", beta, created=at(1, 25))
    member(webinar, cid, "responded", at(2, 1))
    member(spring, cid, "clicked", at(4, 1))

    dee = person(admin, "Dee", created=at(6, 1))
    member(autumn, dee, "clicked", at(7, 1))
    member(dud, dee, "opened", at(7, 2))
    eve = person(admin, "Eve", gamma, source="Advertising", created=at(6, 5))
    member(dud, eve, "targeted", at(6, 6))

    opps = {
        "opp1": opportunity(admin, "Acme big", acme, 9000, at(3, 15), contact=ann, won=at(5, 1)),
        "opp2": opportunity(admin, "Acme open", acme, 3000, at(2, 20), contact=ann),
        "opp3": opportunity(admin, "Beta deal", beta, 5000, at(3, 1), won=at(4, 15)),
        "opp4": opportunity(admin, "Acme more", acme, 1000, at(6, 1), contact=ann, won=at(6, 20)),
        "opp5": opportunity(admin, "Gamma", gamma, 2000, at(7, 1), contact=eve, won=at(8, 1)),
    }
    marketing_rollup_refresh()
    return {"admin": admin, **campaigns, **opps, "people": [ann, bob, cid, dee, eve]}


@pytest.fixture
def data(in_alpha):
    return build_data_set()


def figures(report, name) -> tuple:
    row = next(r for r in [*report.campaigns, *report.tools] if r.label == name)
    return (row.leads, row.opportunities, row.won, row.customers, row.revenue)


def two(value) -> Decimal:
    return round(Decimal(value), 2)


def test_first_touch_gives_each_lead_and_deal_to_the_earliest_touch_before_it(data):
    report = marketing_results(**YEAR, model=Attribution.FIRST)
    # Ann's first touch is Spring mail (lead, opp1, opp2, opp4: 9,000 + 1,000 won, Acme);
    # Bob's source brought Beta's opp3 first (20 Jan, before Cid's webinar on 1 Feb).
    assert figures(report, "Spring mail") == (1, 3, 2, 1, Decimal("10000.00"))
    assert figures(report, "Expo") == (1, 1, 1, 1, Decimal("5000.00"))
    assert figures(report, "Webinar") == (1, 0, 0, 0, Decimal("0.00"))  # Cid's lead
    assert figures(report, "Autumn mail") == (1, 0, 0, 0, Decimal("0.00"))  # Dee's click
    assert figures(report, "Dud ad") == (0, 0, 0, 0, Decimal("0.00"))  # opens do not count
    assert figures(report, "E-mail") == (2, 3, 2, 1, Decimal("10000.00"))
    # Eve's 2,000 had no touch before it: credited to nobody.
    total = report.total
    assert (total.leads, total.opportunities, total.won, total.customers, total.revenue) == (
        4,
        4,
        3,
        2,
        Decimal("15000.00"),
    )


def test_last_touch_gives_them_to_the_latest_touch_before_the_opportunity(data):
    report = marketing_results(**YEAR, model=Attribution.LAST)
    # Ann's last touch is Expo (opp1, opp4), but Webinar for opp2 (created before Expo);
    # Cid's Spring mail click came after opp3, so Webinar (1 Feb) is opp3's last touch.
    assert figures(report, "Expo") == (2, 2, 2, 1, Decimal("10000.00"))  # leads: Ann, Bob
    assert figures(report, "Webinar") == (0, 2, 1, 1, Decimal("5000.00"))
    assert figures(report, "Spring mail") == (1, 0, 0, 0, Decimal("0.00"))  # Cid's last touch


def test_an_even_split_shares_each_deal_equally_among_its_touches(data):
    report = marketing_results(**YEAR, model=Attribution.EVEN)
    # opp1 and opp4: a third each to Spring mail, Webinar, Expo; opp2: halves to Spring mail
    # and Webinar; opp3: halves to Expo and Webinar. Ann's lead in thirds, Cid's in halves.
    assert figures(report, "Spring mail") == (
        two(THIRD + Decimal("0.5")),
        two(THIRD + Decimal("0.5") + THIRD),
        two(2 * THIRD),
        two(THIRD),
        two(Decimal(9000) / 3 + Decimal(1000) / 3),
    )
    assert figures(report, "Webinar") == (
        two(THIRD + Decimal("0.5")),
        two(THIRD + Decimal("0.5") + Decimal("0.5") + THIRD),
        two(THIRD + Decimal("0.5") + THIRD),
        two(THIRD + Decimal("0.5")),
        two(Decimal(9000) / 3 + Decimal(2500) + Decimal(1000) / 3),
    )
    assert figures(report, "Expo") == (
        two(THIRD + 1),
        two(THIRD + Decimal("0.5") + THIRD),
        two(THIRD + Decimal("0.5") + THIRD),
        two(THIRD + Decimal("0.5")),
        two(Decimal(9000) / 3 + Decimal(2500) + Decimal(1000) / 3),
    )
    # The rows round to the cent; the total is summed before rounding.
    assert report.total.revenue == Decimal("15000.00")
    assert report.total.opportunities == 4


def test_a_period_counts_what_was_created_won_or_first_touched_in_it(data):
    report = marketing_results(start=date(2026, 4, 1), end=date(2026, 4, 30), model="first")
    # Only opp3's win (15 Apr) falls in April; it made Beta a customer.
    assert figures(report, "Expo") == (0, 0, 1, 1, Decimal("5000.00"))
    assert report.total.opportunities == report.total.leads == 0
    # Campaigns without figures are listed only when they ran in the period.
    assert [r.label for r in report.campaigns] == ["Expo", "Webinar"]


def test_whole_months_and_the_days_around_them_add_up(data):
    # 10 Mar to 25 Jun: March and June in part (from the rows), April and May whole (from the
    # monthly rollup). Created in it: opp1 (15 Mar) and opp4 (1 Jun); won: opp3 (15 Apr),
    # opp1 (1 May) and opp4 (20 Jun); no lead's first touch.
    report = marketing_results(start=date(2026, 3, 10), end=date(2026, 6, 25), model="first")
    assert figures(report, "Spring mail") == (0, 2, 2, 1, Decimal("10000.00"))
    assert figures(report, "Expo") == (0, 0, 1, 1, Decimal("5000.00"))
    edges_only = marketing_results(start=date(2026, 6, 2), end=date(2026, 6, 25), model="last")
    assert figures(edges_only, "Expo") == (0, 0, 1, 0, Decimal("1000.00"))


def test_customer_size_by_source_and_by_first_touch_tool(data):
    by_source = customer_size(**YEAR, by="source")
    # opp1 and opp4 through Ann ("Referral"), opp3 through Beta's first contact with a source
    # (Bob, "expo"), opp5 through Eve ("Advertising").
    # Largest average first; on a tie, more deals first.
    assert [(r.label, r.deals, r.customers, r.revenue, r.average, r.median) for r in by_source] == [
        ("Referral", 2, 1, Decimal("10000.00"), Decimal("5000.00"), Decimal("5000.00")),
        ("expo", 1, 1, Decimal("5000.00"), Decimal("5000.00"), Decimal("5000.00")),
        ("Advertising", 1, 1, Decimal("2000.00"), Decimal("2000.00"), Decimal("2000.00")),
    ]
    by_tool = customer_size(**YEAR, by="tool")
    assert [(r.label, r.deals, r.average) for r in by_tool] == [
        ("E-mail", 2, Decimal("5000.00")),
        ("Event / trade show", 1, Decimal("5000.00")),
        ("No marketing touch", 1, Decimal("2000.00")),
    ]


def test_the_refresh_reads_only_what_changed_and_a_rebuild_drops_what_went(data):
    admin, expo, opp1 = data["admin"], data["Expo"], data["opp1"]
    # Nothing changed since August, as far as the refresh can tell...
    for model in (Contact, Account, Opportunity):
        model.objects.update(updated_at=at(8, 1))
    # ...and opp1's credits went missing from the rollup: an incremental run leaves them.
    MarketingCredit.objects.filter(opportunity=opp1).delete()
    # A new contact at Gamma clicks Expo's e-mail now; then Gamma opens a deal.
    fay = person(admin, "Fay", Account.objects.get(name="Gamma"), created=timezone.now())
    member(expo, fay, "clicked", timezone.now())
    later = opportunity(admin, "Gamma again", fay.account, 700, timezone.now())

    assert marketing_rollup_refresh()["rebuilt"] == 0
    assert list(
        MarketingCredit.objects.filter(opportunity=later).values_list("campaign", "is_first")
    ) == [(expo.pk, True)]
    assert not MarketingCredit.objects.filter(opportunity__in=[opp1, data["opp5"]]).exists()
    # The month of the new lead and deal is recounted in the monthly rollup.
    month = timezone.localdate().replace(day=1)
    last_day = period_of("month", month).end - timedelta(days=1)
    now_month = marketing_results(start=month, end=last_day, model="first")
    assert figures(now_month, "Expo")[:2] == (1, 1)

    # Ann leaves Expo (the member is deleted): the daily rebuild drops her touch, brings
    # opp1 back and shares it between Spring mail and Webinar.
    CampaignMember.objects.filter(campaign=expo, contact=data["people"][0]).delete()
    assert marketing_rollup_refresh(rebuild=True)["rebuilt"] == 1
    shares = dict(
        MarketingCredit.objects.filter(opportunity=opp1).values_list("campaign__name", "of_touches")
    )
    assert shares == {"Spring mail": 2, "Webinar": 2}
    assert RollupState.objects.get(name="marketing").refreshed_at is not None


def test_an_incremental_refresh_counts_what_a_rebuild_counts(data):
    from reports.costs import acquisition_cost

    for model in (Contact, Account, Opportunity):
        model.objects.update(updated_at=at(8, 1))
    ann, cid = data["people"][0], data["people"][2]
    # Now: Ann clicks Autumn mail (her fourth touch: her lead's last touch and shares change,
    # back in January), opp2 is won, and Cid moves to the West.
    member(data["Autumn mail"], ann, "clicked", timezone.now())
    Opportunity.objects.filter(pk=data["opp2"].pk).update(
        stage=Stage.objects.get(name="Closed won"),
        closed_at=timezone.now(),
        updated_at=timezone.now(),
    )
    Contact.objects.filter(pk=cid.pk).update(territory="West", updated_at=timezone.now())

    def counted():
        year = {"start": date(2026, 1, 1), "end": timezone.localdate()}
        return [
            (
                marketing_results(**year, model=model),
                acquisition_cost(
                    **year, model=model, dimensions=["tool", "territory"], period="month"
                ),
            )
            for model in Attribution.values
        ]

    assert marketing_rollup_refresh()["rebuilt"] == 0
    incremental = counted()
    assert figures(incremental[1][0], "Autumn mail")[0] == 2  # Dee's and now Ann's last touch
    assert marketing_rollup_refresh(rebuild=True)["rebuilt"] == 1
    assert incremental == counted()


def log_in(client, email, role=None):
    user = (
        user_create(email=email, password=PASSWORD, full_name="R", role=role)
        if role
        else User.objects.get(email=email)
    )
    client.force_login(user)
    return client


PAGES = ("/reports/marketing/", "/reports/customer-size/", "/reports/acquisition-cost/")


def test_sales_may_not_open_the_marketing_reports_and_marketers_may(client, data):
    log_in(client, "seller@alpha.test", Role.SALES)
    for page in (*PAGES, "/reports/costs/"):
        assert client.get(page, **ALPHA).status_code == 403
    log_in(client, "marketer@alpha.test", Role.MARKETING)
    index = client.get("/reports/", **ALPHA).content.decode()
    assert all(page in index for page in PAGES)
    for page in PAGES:
        response = client.get(page, **ALPHA)
        assert response.status_code == 200
        assert "Figures as of" in response.content.decode()


def test_the_page_shows_the_chosen_model_and_its_csv(client, data, django_assert_max_num_queries):
    log_in(client, "boss@alpha.test", Role.MANAGER)
    query = {"start": "2026-01-01", "end": "2026-12-31", "model": "last", "by": "tool"}
    with django_assert_max_num_queries(12):
        page = client.get("/reports/marketing/", query, **ALPHA)
    body = page.content.decode()
    assert page.status_code == 200 and "<svg" in body
    assert 'data-testid="report-problems"' not in body
    response = client.get("/reports/marketing/", {**query, "format": "csv"}, **ALPHA)
    lines = response.content.decode().splitlines()
    assert lines[0] == "Marketing tool,Leads,Opportunities,Won deals,Won customers,Revenue"
    assert "Event / trade show,2.00,2.00,2.00,1.00,10000.00" in lines
    assert lines[-1] == "All campaigns,4.00,4.00,3.00,2.00,15000.00"

    csv = client.get("/reports/customer-size/", {**query, "format": "csv"}, **ALPHA)
    assert csv.content.decode().splitlines()[1] == "E-mail,2,1,10000.00,5000.00,5000.00"


def test_bad_filters_are_named_and_the_defaults_shown(client, data):
    log_in(client, "admin@alpha.test")
    page = client.get(
        "/reports/marketing/", {"start": "someday", "model": "magic", "by": "x"}, **ALPHA
    )
    body = page.content.decode()
    assert page.status_code == 200 and 'data-testid="report-problems"' in body
    assert "Attribution: Select a valid choice" in body
    backwards = client.get(
        "/reports/customer-size/", {"start": "2026-05-01", "end": "2026-01-01"}, **ALPHA
    )
    assert "The end is before the start." in backwards.content.decode()
    huge = client.get("/reports/marketing/", {"start": "1900-01-01", "end": "2026-01-01"}, **ALPHA)
    assert "Choose at most five years." in huge.content.decode()


def test_each_tenant_sees_its_own_figures(client, data, beta, django_capture_on_commit_callbacks):
    with schema_context(beta.schema_name):
        client.force_login(User.objects.get(email="admin@beta.test"))
    year = {"start": "2026-01-01", "end": "2026-12-31", "format": "csv"}
    beta_csv = client.get("/reports/marketing/", year, **BETA).content.decode().splitlines()
    assert beta_csv[1:] == ["All campaigns,,0.00,0.00,0.00,0.00,0.00"]
    # Beta never counted its figures: the page says so and queues a first count, once (an
    # earlier test of the session may have visited beta's page: start from no queued count).
    with schema_context(beta.schema_name):
        cache.delete("reports:marketing-rollup-queued")
    with django_capture_on_commit_callbacks() as queued:
        page = client.get("/reports/marketing/", **BETA).content.decode()
        client.get("/reports/customer-size/", **BETA)
    assert "Spring mail" not in page and "counted for the first time" in page
    assert len(queued) == 1


def test_a_marketer_can_ask_for_fresh_figures(client, data, django_capture_on_commit_callbacks):
    log_in(client, "m2@alpha.test", Role.MARKETING)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(
            "/reports/marketing/refresh/", {"next": "https://evil.example/"}, **ALPHA
        )
    assert response.status_code == 302 and response["Location"] == "/reports/marketing/"
    assert len(queued) == 1
    assert client.get("/reports/marketing/refresh/", **ALPHA).status_code == 405
