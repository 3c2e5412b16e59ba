"""Pipeline movement in a period: what entered, advanced, slipped (from the audit trail of the
expected close date), was won and was lost, counted by hand on a few deals, with drill-downs,
roles and tenants; live before the rollup was first counted and from the rollup after, which an
incremental refresh keeps equal to the live figures."""

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services as contact_services
from contacts.models import Account
from crm.demo import pipeline_ensure
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from opportunities import services
from opportunities.models import Opportunity, StageChange
from reports import forecast
from reports.deal_rollups import KINDS, deal_rollups_refresh, forecast_counted, movement_counted
from reports.filters import period_of, today
from reports.forecast import Numbers, period_key
from reports.models import ForecastCell, MovementCell
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def people(in_alpha):
    north, south = Team.objects.create(name="North"), Team.objects.create(name="South")
    return {
        "admin": User.objects.get(email="admin@alpha.test"),
        "mona": user_create(
            email="mona@alpha.test",
            password=PASSWORD,
            full_name="Mona",
            role=Role.MANAGER,
            team=north,
        ),
        "sam": user_create(
            email="sam@alpha.test", password=PASSWORD, full_name="Sam", role=Role.SALES, team=north
        ),
        "tom": user_create(
            email="tom@alpha.test", password=PASSWORD, full_name="Tom", role=Role.SALES, team=south
        ),
    }


@pytest.fixture
def moves(people, period):
    """In the period P (dates moved into it after the services wrote them):

    A  Sam  100  created in P                                  entered
    B  Sam  200  Qualification -> Proposal -> Needs analysis  advanced (once)
    C  Sam  300  Proposal -> Qualification                     nothing (backwards)
    D  Sam  400  close date pushed from P+10 to P+40           slipped
    E  Sam  500  close date pulled in                          nothing
    F  Sam  600  close date pushed, but before P               nothing
    G  Tom  700  won in P (the move to won is no advance)      won
    H  Tom  800  lost in P                                     lost
    I  Sam  900  close date set where there was none          nothing
    """
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    admin = people["admin"]
    account = contact_services.account_create(actor=admin, name="Initech")
    inside = at(period.start + timedelta(days=20))
    d = period.start

    def deal(name, owner, amount, stage="Qualification", close=None):
        return services.opportunity_create(
            actor=owner,
            name=name,
            account=account,
            stage=stages[stage],
            amount=Decimal(amount),
            expected_close=close,
        )

    def into_period(opportunity, moment=inside):
        StageChange.objects.filter(opportunity=opportunity, from_stage__isnull=False).update(
            changed_at=moment
        )
        AuditEntry.objects.filter(
            model="opportunities.opportunity", object_id=opportunity.pk, action="updated"
        ).update(at=moment)

    sam, tom = people["sam"], people["tom"]
    a = deal("A", sam, 100)
    Opportunity.objects.filter(pk=a.pk).update(created_at=inside)
    b = deal("B", sam, 200)
    services.opportunity_move_stage(actor=sam, opportunity=b, stage=stages["Proposal"])
    services.opportunity_move_stage(actor=sam, opportunity=b, stage=stages["Needs analysis"])
    into_period(b)
    c = deal("C", sam, 300, "Proposal")
    services.opportunity_move_stage(actor=sam, opportunity=c, stage=stages["Qualification"])
    into_period(c)
    pushed = deal("D", sam, 400, close=d + timedelta(days=10))
    services.opportunity_update(
        actor=sam, opportunity=pushed, expected_close=d + timedelta(days=40)
    )
    into_period(pushed)
    e = deal("E", sam, 500, close=d + timedelta(days=40))
    services.opportunity_update(actor=sam, opportunity=e, expected_close=d + timedelta(days=10))
    into_period(e)
    f = deal("F", sam, 600, close=d + timedelta(days=10))
    services.opportunity_update(actor=sam, opportunity=f, expected_close=d + timedelta(days=60))
    into_period(f, at(d) - timedelta(hours=13))
    g = deal("G", tom, 700, "Negotiation")
    services.opportunity_close(actor=tom, opportunity=g, won=True, reason="Price")
    into_period(g)
    Opportunity.objects.filter(pk=g.pk).update(closed_at=inside)
    h = deal("H", tom, 800)
    services.opportunity_close(actor=tom, opportunity=h, won=False, reason="Budget")
    Opportunity.objects.filter(pk=h.pk).update(closed_at=inside)
    i = deal("I", sam, 900)
    services.opportunity_update(actor=sam, opportunity=i, expected_close=d + timedelta(days=5))
    into_period(i)


@pytest.fixture
def moved(moves, source):
    if source == "counted":
        deal_rollups_refresh()
    return source


def log_in(client, user):
    client.logout()
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)


def movement(content: bytes) -> dict[str, tuple[str, str]]:
    html = content.decode()
    return {
        name: (count, amount)
        for name, count, amount in re.findall(
            r'data-testid="movement-(\w+)">\s*<td>[^<]+</td>\s*'
            r'<td class="num"><a [^>]+>([^<]+)</a></td>\s*<td class="num"><a [^>]+>([^<]+)</a>',
            html,
        )
    }


def test_movement_by_hand_for_the_admin_and_a_manager(client, people, moved, period):
    key = period_key(period)
    log_in(client, people["admin"])
    everyone = client.get(f"/reports/pipeline-movement/?period={key}", **ALPHA)
    log_in(client, people["mona"])
    team = client.get(f"/reports/pipeline-movement/?period={key}", **ALPHA)

    freshness = "Counted at" if moved == "counted" else "live figures as of this moment"
    assert freshness in everyone.content.decode()

    assert movement(everyone.content) == {
        "entered": ("1", "100.00"),
        "advanced": ("1", "200.00"),
        "slipped": ("1", "400.00"),
        "won": ("1", "700.00"),
        "lost": ("1", "800.00"),
    }
    # Tom (won, lost) is in another team.
    assert movement(team.content) == {
        "entered": ("1", "100.00"),
        "advanced": ("1", "200.00"),
        "slipped": ("1", "400.00"),
        "won": ("0", "0.00"),
        "lost": ("0", "0.00"),
    }


def test_each_row_drills_down_to_its_deals(client, people, moves, period):
    log_in(client, people["admin"])
    page = client.get(f"/reports/pipeline-movement/?period={period_key(period)}", **ALPHA)
    links = dict(
        re.findall(
            r'data-testid="movement-(\w+)">\s*<td>[^<]+</td>\s*<td class="num"><a href="([^"]+)"',
            page.content.decode(),
        )
    )

    found = {}
    for name, link in links.items():
        drill = client.get(unescape(link), **ALPHA).content.decode()
        found[name] = re.findall(r'data-testid="drill-row">\s*<td><a [^>]+>([^<]+)</a>', drill)

    assert found == {
        "entered": ["A"],
        "advanced": ["B"],
        "slipped": ["D"],
        "won": ["G"],
        "lost": ["H"],
    }


def test_the_csv_and_the_next_period(client, people, moved, period):
    log_in(client, people["admin"])

    csv = client.get(f"/reports/pipeline-movement/?period={period_key(period)}&format=csv", **ALPHA)
    later = client.get(f"/reports/pipeline-movement/?period={period_key(period.next())}", **ALPHA)

    assert csv.content.decode().splitlines() == [
        "Movement,Opportunities,Amount",
        "Entered,1,100.00",
        "Advanced,1,200.00",
        "Slipped,1,400.00",
        "Won,1,700.00",
        "Lost,1,800.00",
    ]
    # This quarter: all nine were created in it, nothing else moved in it.
    assert movement(later.content)["entered"] == ("8", "4,400.00")
    assert movement(later.content)["advanced"] == ("0", "0.00")


def test_sales_may_not_and_other_tenants_do_not_count(client, people, moved, period, beta):
    log_in(client, people["sam"])
    assert client.get("/reports/pipeline-movement/", **ALPHA).status_code == 403

    with schema_context(beta.schema_name):
        admin = User.objects.get(email="admin@beta.test")
        services.opportunity_create(
            actor=admin,
            name="Beta deal",
            account=contact_services.account_create(actor=admin, name="Beta account"),
            stage=pipeline_ensure().stages.get(name="Proposal"),
            amount=Decimal("5"),
        )
        if moved == "counted":
            deal_rollups_refresh()
    client.logout()
    client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)
    beta_page = client.get(
        f"/reports/pipeline-movement/?period={period_key(period.next())}", **BETA
    )

    assert movement(beta_page.content)["entered"] == ("1", "5.00")


def _aged():
    """What was made so far as if saved an hour ago and more, so that a refresh finds only what
    changes after it (the moments the measures read stay where the fixture put them)."""
    recent = timezone.now() - timedelta(minutes=30)
    Opportunity.objects.update(updated_at=F("updated_at") - timedelta(days=1))
    Account.objects.update(updated_at=F("updated_at") - timedelta(days=1))
    AuditEntry.objects.filter(at__gte=recent).update(at=F("at") - timedelta(hours=1))
    StageChange.objects.filter(changed_at__gte=recent).update(
        changed_at=F("changed_at") - timedelta(hours=1)
    )


def _matches_live(people, periods) -> None:
    scopes = [
        forecast.Scope(),
        forecast.Scope(territory="west"),
        forecast.Scope(owner=str(people["sam"].pk)),
        forecast.Scope(team_id=people["tom"].team_id),
        forecast.Scope(owner=forecast.NO_OWNER),
    ]
    for user in (people["admin"], people["mona"]):
        for shown in periods:
            for scope in scopes:
                assert movement_counted(user, scope, shown) == forecast.pipeline_movement(
                    user, scope, shown
                ), (user, shown, scope)
                live = forecast.forecast_by_owner(forecast.scoped_opportunities(user, scope), shown)
                assert forecast_counted(user, scope, shown) == live, (user, shown, scope)


def test_a_refresh_recounts_what_changed_since_and_matches_the_live_figures(people, moves, period):
    admin, sam, tom = people["admin"], people["sam"], people["tom"]
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    initech = Account.objects.get(name="Initech")
    # Years nothing else is in: K closes in the first, L in the second, M was won in the third.
    far, farther, past = (date(period.start.year + n, 6, 15) for n in (3, 5, -3))
    k = services.opportunity_create(
        actor=sam, name="K", account=initech, stage=stages["Proposal"], amount=Decimal("70")
    )
    services.opportunity_update(actor=sam, opportunity=k, expected_close=far)
    globex = contact_services.account_create(actor=admin, name="Globex", territory="East")
    services.opportunity_create(
        actor=sam,
        name="L",
        account=globex,
        stage=stages["Proposal"],
        amount=Decimal("90"),
        expected_close=farther,
    )
    umbrella = contact_services.account_create(actor=admin, name="Umbrella")
    m = services.opportunity_create(
        actor=tom, name="M", account=umbrella, stage=stages["Negotiation"], amount=Decimal("60")
    )
    services.opportunity_close(actor=tom, opportunity=m, won=True, reason="Fit")
    Opportunity.objects.filter(pk=m.pk).update(closed_at=at(past))
    StageChange.objects.filter(opportunity=m, from_stage__isnull=False).update(changed_at=at(past))
    _aged()
    deal_rollups_refresh()
    deals = {o.name: o for o in Opportunity.objects.all()}
    hooli = contact_services.account_create(actor=admin, name="Hooli", territory="South")
    # After the count, each change is found its own way: A's amount changes (it entered in P:
    # the deal was saved); B advances again; G, won in P, and M are reopened (their stage
    # history has where they closed); K's close date is pushed a year (the audit trail has the
    # year it left); Globex, whose deal L did not change, and Initech move to the West
    # territory (the accounts were saved); J is new.
    services.opportunity_update(actor=sam, opportunity=deals["A"], amount=Decimal("150"))
    services.opportunity_move_stage(actor=sam, opportunity=deals["B"], stage=stages["Proposal"])
    for reopened in ("G", "M"):
        services.opportunity_move_stage(
            actor=tom, opportunity=deals[reopened], stage=stages["Proposal"]
        )
    services.opportunity_update(
        actor=sam, opportunity=deals["K"], expected_close=far + timedelta(days=365)
    )
    for account in (globex, initech):
        contact_services.account_update(actor=admin, account=account, territory="West")
    services.opportunity_create(
        actor=tom,
        name="J",
        account=hooli,
        stage=stages["Qualification"],
        amount=Decimal("1000"),
        expected_close=today(),
    )

    deal_rollups_refresh()

    moments = (today(), far, far + timedelta(days=365), farther, past, period.start)
    _matches_live(
        people, {period.next(), *(period_of(kind, day) for kind in KINDS for day in moments)}
    )
    assert {
        row.measure: (row.count, row.amount)
        for row in movement_counted(admin, forecast.Scope(), period)
    } == {
        "entered": (1, Decimal("150.00")),
        "advanced": (1, Decimal("200.00")),
        "slipped": (1, Decimal("400.00")),
        "won": (0, Decimal("0")),
        "lost": (1, Decimal("800.00")),
    }
    year = {kind: period_of("year", day) for kind, day in (("far", far), ("past", past))}
    assert forecast_counted(admin, forecast.Scope(), year["far"]) == {}
    assert forecast_counted(admin, forecast.Scope(), year["past"]) == {}
    assert forecast_counted(
        admin, forecast.Scope(territory="West"), period_of("year", farther)
    ) == {sam.pk: Numbers(pipeline=Decimal("90"), weighted=Decimal("45"))}


def test_a_refresh_with_nothing_new_recounts_nothing(people, moves):
    _aged()
    deal_rollups_refresh()

    assert deal_rollups_refresh() == 0


def test_an_edited_pipeline_or_a_deletion_recounts_everything(people, moves, period):
    admin = people["admin"]
    pipeline = pipeline_ensure()
    _aged()
    deal_rollups_refresh()

    # Qualification's probability goes from 10% to 20% (D, E, F and I close in P and after).
    stages = [
        {
            "id": stage.pk,
            "name": stage.name,
            "probability": 20 if stage.name == "Qualification" else stage.probability,
            "is_won": stage.is_won,
            "is_lost": stage.is_lost,
        }
        for stage in pipeline.stages.order_by("position")
    ]
    services.pipeline_save(actor=admin, pipeline=pipeline, name=pipeline.name, stages=stages)
    deal_rollups_refresh()
    _matches_live(people, [period, *(period_of(kind, today()) for kind in KINDS)])
    # H (lost in P) is deleted; then Initech, with every other deal.
    services.opportunity_delete(actor=admin, opportunity=Opportunity.objects.get(name="H"))
    deal_rollups_refresh()
    lost = movement_counted(admin, forecast.Scope(), period)[-1]
    contact_services.account_delete(actor=admin, account=Account.objects.get(name="Initech"))
    deal_rollups_refresh()

    assert (lost.measure, lost.count) == ("lost", 0)
    assert not MovementCell.objects.exists() and not ForecastCell.objects.exists()
