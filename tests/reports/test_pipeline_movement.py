"""Pipeline movement in a period: what entered, advanced, slipped (from the audit trail of the
expected close date), was won and was lost, counted by hand on a few deals, with drill-downs,
roles and tenants; live before the rollup was first counted and from the rollup after, which an
incremental refresh keeps equal to the live figures."""

import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import services as contact_services
from crm.demo import pipeline_ensure
from crm.users.models import Role, Team, User
from crm.users.services import user_create
from opportunities import services
from opportunities.models import Opportunity, StageChange
from reports import forecast
from reports.deal_rollups import KINDS, deal_rollups_refresh, forecast_counted, movement_counted
from reports.filters import period_of, today
from reports.forecast import Numbers, period_key
from tests.conftest import PASSWORD
from tracking.models import AuditEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def period():
    return period_of("quarter", today()).previous()


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


@pytest.fixture(params=["live", "counted"])
def source(request):
    """Whether the page shows live figures (the rollup never counted) or the rollup's, counted
    after the deals were made."""
    return request.param


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


def test_a_refresh_recounts_what_changed_since_and_matches_the_live_figures(people, moves, period):
    deal_rollups_refresh()
    admin, sam, tom = people["admin"], people["sam"], people["tom"]
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    deals = {o.name: o for o in Opportunity.objects.all()}
    hooli = contact_services.account_create(actor=admin, name="Hooli")
    old_close = deals["D"].expected_close
    new_close = old_close + timedelta(days=100)
    # Now, after the count: A's amount changes (it entered in P); G, won in P, is reopened; B
    # advances again; D's close date is pushed into a later quarter; J is new, and its account
    # moves to the West territory.
    services.opportunity_update(actor=sam, opportunity=deals["A"], amount=Decimal("150"))
    services.opportunity_move_stage(actor=tom, opportunity=deals["G"], stage=stages["Proposal"])
    services.opportunity_move_stage(actor=sam, opportunity=deals["B"], stage=stages["Proposal"])
    services.opportunity_update(actor=sam, opportunity=deals["D"], expected_close=new_close)
    services.opportunity_create(
        actor=tom,
        name="J",
        account=hooli,
        stage=stages["Qualification"],
        amount=Decimal("1000"),
        expected_close=today(),
    )
    contact_services.account_update(actor=admin, account=hooli, territory="West")

    assert deal_rollups_refresh() >= 4

    now = today()
    periods = {
        period,
        period.next(),
        *(period_of(kind, day) for kind in KINDS for day in (now, old_close, new_close)),
    }
    scopes = [
        forecast.Scope(),
        forecast.Scope(territory="west"),
        forecast.Scope(owner=str(sam.pk)),
        forecast.Scope(team_id=tom.team_id),
    ]
    for user in (admin, people["mona"]):
        for shown in periods:
            for scope in scopes:
                assert movement_counted(user, scope, shown) == forecast.pipeline_movement(
                    user, scope, shown
                ), (user, shown, scope)
                live = forecast.forecast_by_owner(forecast.scoped_opportunities(user, scope), shown)
                assert forecast_counted(user, scope, shown) == live, (user, shown, scope)
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
    assert forecast_counted(admin, forecast.Scope(territory="West"), period_of("month", now)) == {
        tom.pk: Numbers(pipeline=Decimal("1000"), weighted=Decimal("100"))
    }
    # Changes are read again for a while (one saved before a refresh may commit after it read),
    # then nothing is recounted while nothing changes.
    later = timezone.now() + timedelta(minutes=11)
    assert deal_rollups_refresh(now=later) > 0
    assert deal_rollups_refresh(now=later + timedelta(minutes=5)) == 0
