"""The per-owner stage totals the database keeps for the pipeline board (StageTotal): whatever
writes deals, the kept totals stay equal to the deals counted one by one, in each tenant's own
schema."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum
from django_tenants.utils import schema_context

from contacts import services as contact_services
from contacts.models import Account
from crm.bulk_insert import copy_insert
from crm.demo import pipeline_ensure
from crm.users.models import Role
from crm.users.services import user_create
from opportunities import services
from opportunities.models import Opportunity, StageTotal
from opportunities.services import stage_totals_compact
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def counted() -> dict:
    """(stage, owner) -> (count, amount), from the deals themselves."""
    rows = Opportunity.objects.values("stage", "owner").annotate(n=Count("*"), total=Sum("amount"))
    return {(r["stage"], r["owner"]): (r["n"], r["total"]) for r in rows.order_by()}


def kept() -> dict:
    """(stage, owner) -> (count, amount), from the kept totals, leaving out those at zero."""
    rows = StageTotal.objects.values("stage", "owner").annotate(n=Sum("count"), total=Sum("amount"))
    return {
        (r["stage"], r["owner"]): (r["n"], r["total"])
        for r in rows.order_by()
        if r["n"] or r["total"]
    }


def test_the_kept_totals_follow_every_way_deals_are_written(admin, stages):
    seller = user_create(
        email="seller@alpha.test", password=PASSWORD, full_name="Seller", role=Role.SALES
    )
    account = contact_services.account_create(actor=admin, name="Initech")
    deal = services.opportunity_create(
        actor=admin, name="Renewal", account=account, stage=stages["Qualification"], amount=100
    )
    services.opportunity_create(
        actor=admin, name="Upsell", account=account, stage=stages["Qualification"], amount=50
    )
    assert kept() == counted() == {(stages["Qualification"].pk, admin.pk): (2, Decimal("150"))}

    services.opportunity_move_stage(actor=admin, opportunity=deal, stage=stages["Proposal"])
    services.opportunity_update(actor=admin, opportunity=deal, amount=Decimal("120.50"))
    services.opportunity_update(actor=admin, opportunity=deal, owner=seller)
    assert kept() == counted()
    assert kept()[(stages["Proposal"].pk, seller.pk)] == (1, Decimal("120.50"))

    # Many rows in one statement, each way: a COPY, a multi-row INSERT, an UPDATE, a DELETE.
    copy_insert(
        [
            Opportunity(name=f"Copied {n}", account=account, stage=stages["Proposal"], amount=n)
            for n in range(1, 11)
        ]
    )
    Opportunity.objects.bulk_create(
        Opportunity(name=f"Bulk {n}", account=account, stage=stages["Negotiation"], owner=seller)
        for n in range(3)
    )
    Opportunity.objects.filter(name__startswith="Copied").update(owner=admin, amount=7)
    assert kept() == counted()
    Opportunity.objects.filter(name__startswith="Bulk").delete()
    services.opportunity_delete(actor=admin, opportunity=deal)
    assert kept() == counted()
    assert kept()[(stages["Proposal"].pk, admin.pk)] == (10, Decimal("70"))

    # A deal whose owner leaves is counted without an owner.
    seller_deal = services.opportunity_create(
        actor=admin, name="Orphan", account=account, stage=stages["Proposal"], owner=seller
    )
    seller.delete()
    seller_deal.refresh_from_db()
    assert seller_deal.owner is None
    assert kept() == counted()
    assert kept()[(stages["Proposal"].pk, None)] == (1, Decimal("0"))

    # Folding the rows the triggers added changes no total: one row per stage and owner is left,
    # without those that came back to zero (the seller's), and a second fold finds them folded.
    before = kept()
    assert StageTotal.objects.count() > len(before)
    assert stage_totals_compact() == len(before) == StageTotal.objects.count()
    assert kept() == before
    assert stage_totals_compact() == len(before)

    # Emptying the table empties the totals.
    with connection.cursor() as cursor:
        # (The test's transaction holds deferred foreign-key checks, which TRUNCATE refuses.)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE opportunities_opportunity CASCADE")
    assert kept() == counted() == {}


def test_each_tenant_keeps_its_own_totals(alpha, beta):
    """Both test tenants were cloned from the template schema, triggers and all."""
    for tenant, amount in ((alpha, 10), (beta, 20)):
        with schema_context(tenant.schema_name):
            stage = pipeline_ensure().stages.get(name="Proposal")
            account = Account.objects.create(name=f"{tenant.slug} account")
            Opportunity.objects.create(name="Deal", account=account, stage=stage, amount=amount)

    for tenant, amount in ((alpha, 10), (beta, 20)):
        with schema_context(tenant.schema_name):
            assert list(StageTotal.objects.values_list("count", "amount")) == [(1, amount)]
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_name = 'opportunities_stagetotal' AND table_schema = 'public'"
        )
        assert cursor.fetchone() == (0,)


def test_the_totals_can_be_counted_afresh_after_something_went_around_the_triggers(
    admin, stages, alpha
):
    account = Account.objects.create(name="Initech")
    for amount in (10, 20):
        Opportunity.objects.create(
            name="Deal", account=account, stage=stages["Proposal"], owner=admin, amount=amount
        )
    with connection.cursor() as cursor:
        # As a restore with triggers off would leave them: deals the totals never saw.
        cursor.execute("SET session_replication_role = replica")
        try:
            Opportunity.objects.create(name="Unseen", account=account, stage=stages["Proposal"])
        finally:
            cursor.execute("SET session_replication_role = DEFAULT")
    assert kept() != counted()

    out = StringIO()
    call_command("rebuild_stage_totals", "alpha", stdout=out)

    assert kept() == counted()
    assert kept()[(stages["Proposal"].pk, admin.pk)] == (2, Decimal("30"))
    assert "alpha: stage totals counted afresh (2 rows)" in out.getvalue()
    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("rebuild_stage_totals", "nowhere")
