"""The sales forecast: its numbers on a small set of deals whose right answers are worked out by
hand below, the drill-down behind every number, quotas' attainment, history and accuracy from
snapshots, CSV, bad filters, roles and tenants."""

import csv
import io
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
from opportunities.models import Opportunity
from reports.deal_rollups import deal_rollups_refresh
from reports.filters import period_of, today
from reports.forecast import period_key
from reports.models import ForecastSnapshot, Quota
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def people(in_alpha):
    north, south = Team.objects.create(name="North"), Team.objects.create(name="South")

    def person(email, name, role, team):
        return user_create(email=email, password=PASSWORD, full_name=name, role=role, team=team)

    return {
        "admin": User.objects.get(email="admin@alpha.test"),
        "mona": person("mona@alpha.test", "Mona Manager", Role.MANAGER, north),
        "sam": person("sam@alpha.test", "Sam Seller", Role.SALES, north),
        "sue": person("sue@alpha.test", "Sue Seller", Role.SALES, north),
        "tom": person("tom@alpha.test", "Tom South", Role.SALES, south),
        "south": south,
    }


@pytest.fixture
def deals(people, period, source):
    """The deals, and what each counts for in `period` (P):

    #   owner  account  stage (prob.)      amount  expected close   category   counts as
    1   Sam    north    Proposal (50)       1000   P + 10 days      commit     commit, w 500
    2   Sam    north    Qualification (10)  2000   P + 20           pipeline   pipeline, w 200
    3   Sam    south    Negotiation (75)     400   P + 30           best case  best case, w 300
    4   Sam    north    Proposal            5000   P's end          commit     nothing (after P)
    5   Sam    north    Proposal            7000   P's start - 1    commit     nothing (before P)
    6   Sue    north    Needs analysis (25)  800   P's start        commit     commit, w 200
    7   Sue    north    won                 3000   after P          (closed in P)  closed won
    8   Sue    north    won                  600   in P             (closed before P) nothing
    9   Sue    north    lost                 900   P + 5            (closed in P)  nothing
    10  Tom    south    Proposal            1500   P + 15           commit     commit, w 750
    11  Tom    south    won                 2500                    (closed in P)  closed won
    12  nobody north    Proposal             100   P + 3            pipeline   pipeline, w 50
    13  Sam    north    Qualification         50   P + 7            "closed"   pipeline, w 5
    14  Sam    north    Proposal           10000   none             commit     nothing
    """
    stages = {s.name: s for s in pipeline_ensure().stages.all()}
    admin = people["admin"]
    north = contact_services.account_create(actor=admin, name="Northwind", territory="North")
    south = contact_services.account_create(actor=admin, name="Southco", territory="South")
    d = period.start
    made = {}

    def deal(n, owner, account, stage, amount, close, category="pipeline", closed_at=None):
        opportunity = services.opportunity_create(
            actor=admin,
            name=f"Deal {n}",
            account=account,
            owner=owner,
            stage=stages[stage],
            amount=Decimal(amount),
            expected_close=close,
            forecast_category=category,
        )
        if closed_at is not None:
            Opportunity.objects.filter(pk=opportunity.pk).update(closed_at=closed_at)
        made[n] = opportunity

    sam, sue, tom = people["sam"], people["sue"], people["tom"]
    deal(1, sam, north, "Proposal", 1000, d + timedelta(days=10), "commit")
    deal(2, sam, north, "Qualification", 2000, d + timedelta(days=20))
    deal(3, sam, south, "Negotiation", 400, d + timedelta(days=30), "best_case")
    deal(4, sam, north, "Proposal", 5000, period.end, "commit")
    deal(5, sam, north, "Proposal", 7000, d - timedelta(days=1), "commit")
    deal(6, sue, north, "Needs analysis", 800, d, "commit")
    deal(7, sue, north, "Closed won", 3000, period.end + timedelta(days=3), closed_at=at(d, 0))
    deal(8, sue, north, "Closed won", 600, d + timedelta(days=2), closed_at=at(d) - timedelta(1))
    deal(9, sue, north, "Closed lost", 900, d + timedelta(days=5), closed_at=at(d))
    deal(10, tom, south, "Proposal", 1500, d + timedelta(days=15), "commit")
    deal(11, tom, south, "Closed won", 2500, None, closed_at=at(period.end) - timedelta(1))
    deal(12, admin, north, "Proposal", 100, d + timedelta(days=3))
    Opportunity.objects.filter(pk=made[12].pk).update(owner=None)
    deal(13, sam, north, "Qualification", 50, d + timedelta(days=7), "closed")
    deal(14, sam, north, "Proposal", 10000, None, "commit")
    if source == "counted":
        deal_rollups_refresh()
    return made


def log_in(client, user):
    client.logout()
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **ALPHA)
    return client


def table(content: bytes) -> dict[str, list[str]]:
    """The forecast table as {salesperson: [pipeline, best case, commit, weighted, closed won,
    quota, attainment]} (the last two only when quotas are shown)."""
    html = content.decode()
    body = html[html.index('data-testid="forecast-table"') : html.index("</table>")]
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)[1:]:
        cells = [
            unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)
        ]
        rows[cells[0]] = cells[1:]
    return rows


def test_the_forecast_sums_by_hand_for_the_admin(client, people, deals, period, source):
    log_in(client, people["admin"])

    page = client.get(f"/reports/forecast/?period={period_key(period)}", **ALPHA)

    assert page.status_code == 200
    freshness = "Counted at" if source == "counted" else "live figures as of this moment"
    assert freshness in page.content.decode()
    assert table(page.content) == {
        "Sam Seller": ["2,050.00", "400.00", "1,000.00", "1,005.00", "0.00", "—", "—"],
        "Sue Seller": ["0.00", "0.00", "800.00", "200.00", "3,000.00", "—", "—"],
        "Tom South": ["0.00", "0.00", "1,500.00", "750.00", "2,500.00", "—", "—"],
        "No owner": ["100.00", "0.00", "0.00", "50.00", "0.00", "—", "—"],
        "Total": ["2,150.00", "400.00", "3,300.00", "2,005.00", "5,500.00", "—", "—"],
    }


def test_a_manager_sees_their_team_only_with_quota_attainment(client, people, deals, period):
    Quota.objects.create(
        user=people["sue"], period_kind="quarter", period_start=period.start, amount=6000
    )
    Quota.objects.create(
        user=people["sam"], period_kind="quarter", period_start=period.start, amount=1000
    )
    # Tom's quota is not the manager's to see.
    Quota.objects.create(
        user=people["tom"], period_kind="quarter", period_start=period.start, amount=99
    )
    log_in(client, people["mona"])

    page = client.get(f"/reports/forecast/?period={period_key(period)}", **ALPHA)

    # Attainment: Sue 3,000 / 6,000; Sam 0 / 1,000; total 3,000 / 7,000 = 42.857...%.
    assert table(page.content) == {
        "Sam Seller": ["2,050.00", "400.00", "1,000.00", "1,005.00", "0.00", "1,000.00", "0.0%"],
        "Sue Seller": ["0.00", "0.00", "800.00", "200.00", "3,000.00", "6,000.00", "50.0%"],
        "Total": ["2,050.00", "400.00", "1,800.00", "1,205.00", "3,000.00", "7,000.00", "42.9%"],
    }
    assert b"Tom South" not in page.content


def test_a_team_a_person_and_a_territory(client, people, deals, period):
    log_in(client, people["admin"])
    key = period_key(period)

    south = client.get(f"/reports/forecast/?period={key}&team={people['south'].pk}", **ALPHA)
    sue = client.get(f"/reports/forecast/?period={key}&owner={people['sue'].pk}", **ALPHA)
    # A territory is the account's, whatever the case it is typed in; quotas are per person.
    territory = client.get(f"/reports/forecast/?period={key}&territory=south", **ALPHA)

    assert table(south.content)["Total"][:5] == ["0.00", "0.00", "1,500.00", "750.00", "2,500.00"]
    assert list(table(sue.content)) == ["Sue Seller", "Total"]
    assert table(territory.content) == {
        "Sam Seller": ["0.00", "400.00", "0.00", "300.00", "0.00"],
        "Tom South": ["0.00", "0.00", "1,500.00", "750.00", "2,500.00"],
        "Total": ["0.00", "400.00", "1,500.00", "1,050.00", "2,500.00"],
    }
    assert b"shows no attainment" in territory.content


def _drill_links(content: bytes) -> list[tuple[str, str]]:
    """(link, number shown) for every number of the forecast table."""
    html = content.decode()
    body = html[html.index('data-testid="forecast-table"') : html.index("</table>")]
    return [
        (unescape(href), re.sub(r"<[^>]+>", "", text))
        for href, text in re.findall(r'<a href="([^"]+)" data-measure="[^"]+">(.*?)</a>', body)
    ]


def test_every_number_drills_down_to_exactly_the_deals_it_sums(client, people, deals, period):
    for who in ("admin", "mona"):
        log_in(client, people[who])
        page = client.get(f"/reports/forecast/?period={period_key(period)}", **ALPHA)
        links = _drill_links(page.content)
        assert len(links) == (5 if who == "admin" else 3) * 5

        for link, shown in links:
            drill = client.get(link, **ALPHA).content.decode()
            summed = "drill-weighted" if "measure=weighted" in link else "drill-amount"
            found = re.search(rf'data-testid="{summed}">([^<]+)<', drill).group(1)
            assert found == shown, link


def _names(content: bytes) -> set[str]:
    return set(re.findall(r'data-testid="drill-row">\s*<td><a [^>]+>([^<]+)</a>', content.decode()))


def test_the_drill_down_lists_the_deals_by_hand(client, people, deals, period):
    key = period_key(period)
    log_in(client, people["mona"])

    commit = client.get(f"/reports/forecast/opportunities/?period={key}&measure=commit", **ALPHA)
    sams_pipeline = client.get(
        f"/reports/forecast/opportunities/?period={key}&measure=pipeline&owner={people['sam'].pk}",
        **ALPHA,
    )
    won = client.get(f"/reports/forecast/opportunities/?period={key}&measure=closed_won", **ALPHA)

    assert _names(commit.content) == {"Deal 1", "Deal 6"}
    assert _names(sams_pipeline.content) == {"Deal 2", "Deal 13"}
    assert _names(won.content) == {"Deal 7"}

    log_in(client, people["admin"])
    weighted = client.get(
        f"/reports/forecast/opportunities/?period={key}&measure=weighted", **ALPHA
    )
    nobody = client.get(
        f"/reports/forecast/opportunities/?period={key}&measure=pipeline&owner=none", **ALPHA
    )
    assert _names(weighted.content) == {f"Deal {n}" for n in (1, 2, 3, 6, 10, 12, 13)}
    assert _names(nobody.content) == {"Deal 12"}


def test_the_drill_down_pages_through_many_deals(client, people, period):
    stage = pipeline_ensure().stages.get(name="Proposal")
    account = contact_services.account_create(actor=people["admin"], name="Big")
    Opportunity.objects.bulk_create(
        Opportunity(
            name=f"Bulk {n}",
            account=account,
            owner=people["sam"],
            stage=stage,
            amount=Decimal(n % 7),
            expected_close=period.start,
            forecast_category="commit",
        )
        for n in range(60)
    )
    log_in(client, people["admin"])
    first = client.get(
        f"/reports/forecast/opportunities/?period={period_key(period)}&measure=commit", **ALPHA
    )
    after = re.search(r'href="\?([^"]+)" rel="next"', first.content.decode()).group(1)
    second = client.get(f"/reports/forecast/opportunities/?{unescape(after)}", **ALPHA)

    assert len(_names(first.content)) == 50 and len(_names(second.content)) == 10
    assert _names(first.content) | _names(second.content) == {f"Bulk {n}" for n in range(60)}
    assert b'data-testid="drill-count">60<' in second.content
    forged = client.get(
        f"/reports/forecast/opportunities/?period={period_key(period)}&measure=commit&after=x",
        **ALPHA,
    )
    assert b"that page link was not valid" in forged.content
    assert _names(forged.content) == _names(first.content)


def test_history_and_accuracy_from_snapshots(client, people, deals, period):
    """Snapshots of P taken twice in it (and once before it began): each sums its people's
    rows; the call is closed won then plus commit, the error compares it with what closed won
    in P (Sam and Sue: 3,000)."""

    def snap(owner, taken, commit, closed_won, weighted):
        ForecastSnapshot.objects.create(
            taken_at=taken,
            period_kind="quarter",
            period_start=period.start,
            owner=owner,
            commit=commit,
            closed_won=closed_won,
            weighted=weighted,
            pipeline=10,
        )

    first, second = at(period.start + timedelta(days=1)), at(period.start + timedelta(days=50))
    snap(people["sam"], at(period.start - timedelta(days=20)), 9000, 0, 1)
    snap(people["sam"], first, 2000, 0, 1500)
    snap(people["sue"], first, 1000, 0, 500)
    snap(people["tom"], first, 5000, 0, 10)
    snap(people["sam"], second, 1000, 1000, 800)
    snap(people["sue"], second, 500, 1000, 300)
    log_in(client, people["mona"])

    page = client.get(f"/reports/forecast/?period={period_key(period)}", **ALPHA).content.decode()

    # Manager's people only (not Tom). Before P: 9,000 called, +200% (1 weighted: -100%).
    # First in P: 0 + 3,000 = 3,000 (0%), weighted 0 + 2,000 (-33.3%). Later: 2,000 + 1,500 =
    # 3,500 (+16.7%), weighted 2,000 + 1,100 = 3,100 (+3.3%).
    assert _rows(page, "history-table") == [
        [
            f"{period.start - timedelta(days=20):%Y-%m-%d}",
            "10.00",
            "0.00",
            "9,000.00",
            "1.00",
            "0.00",
            "9,000.00",
            "200.0%",
            "1.00",
            "-100.0%",
        ],
        [
            f"{first:%Y-%m-%d}",
            "20.00",
            "0.00",
            "3,000.00",
            "2,000.00",
            "0.00",
            "3,000.00",
            "0.0%",
            "2,000.00",
            "-33.3%",
        ],
        [
            f"{second:%Y-%m-%d}",
            "20.00",
            "0.00",
            "1,500.00",
            "1,100.00",
            "2,000.00",
            "3,500.00",
            "16.7%",
            "3,100.00",
            "3.3%",
        ],
    ]
    # The last four quarters that ended: P's forecast is its first snapshot in it; the quarter
    # before had no snapshot, and Sue's deal 8 closed in it.
    p1, p2, p3 = (
        period.previous(),
        period.previous().previous(),
        period.previous().previous().previous(),
    )
    assert _rows(page, "accuracy-table") == [
        [p3.label, "No snapshot taken", "0.00", "—", "—"],
        [p2.label, "No snapshot taken", "0.00", "—", "—"],
        [p1.label, "No snapshot taken", "600.00", "—", "—"],
        [period.label, f"{first:%Y-%m-%d}", "3,000.00", "2,000.00", "3,000.00", "0.0%", "-33.3%"],
    ]


def _rows(page: str, testid: str) -> list[list[str]]:
    part = page[page.index(f'data-testid="{testid}"') :]
    part = part[part.index("<tbody>") : part.index("</tbody>")]
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", part, re.S)
    ]


def test_the_csv_has_the_table_with_its_total(client, people, deals, period):
    log_in(client, people["admin"])

    response = client.get(f"/reports/forecast/?period={period_key(period)}&format=csv", **ALPHA)

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "Salesperson",
        "Pipeline",
        "Best case",
        "Commit",
        "Weighted",
        "Closed won",
        "Quota",
        "Attainment %",
    ]
    assert rows[-1] == ["Total", "2150.00", "400.00", "3300.00", "2005.00", "5500.00", "", ""]
    assert len(rows) == 6


def test_bad_filters_say_so_and_show_the_default(client, people, deals):
    log_in(client, people["mona"])

    page = client.get(
        f"/reports/forecast/?period=2020-Q9&team=x&owner={people['tom'].pk}&territory=" + "x" * 101,
        **ALPHA,
    )
    drill = client.get("/reports/forecast/opportunities/?period=1999&measure=bogus", **ALPHA)

    assert page.status_code == drill.status_code == 200
    problems = re.findall(r"<li>([^<]+)</li>", page.content.decode().split("report-problems")[1])
    assert [p.split(":")[0] for p in problems[:4]] == ["Period", "Team", "Territory", "Salesperson"]
    current = period_of("quarter", today())
    assert f'data-testid="forecast-period">{current.label}<'.encode() in page.content
    # The filters show what the page uses, not the refused values.
    html = page.content.decode()
    assert f'<option value="{period_key(current)}" selected>' in html
    assert 'value="2020-Q9"' not in html and f'value="{"x" * 101}"' not in html
    assert b"Number: Select a valid choice." in drill.content
    assert f"Commit, {current.label}".encode() in drill.content


def test_only_managers_and_admins_see_the_forecast(client, people):
    sales = people["sam"]
    marketer = user_create(
        email="mark@alpha.test", password=PASSWORD, full_name="Mark", role=Role.MARKETING
    )
    for user in (sales, marketer):
        log_in(client, user)
        for path in ("/reports/forecast/", "/reports/forecast/opportunities/"):
            assert client.get(path, **ALPHA).status_code == 403
    log_in(client, people["mona"])
    index = client.get("/reports/", **ALPHA).content.decode()
    assert "/reports/forecast/" in index and "/reports/pipeline-movement/" in index


def test_each_tenant_forecasts_its_own_deals(client, people, deals, period, beta):
    with schema_context(beta.schema_name):
        admin = User.objects.get(email="admin@beta.test")
        services.opportunity_create(
            actor=admin,
            name="Beta deal",
            account=contact_services.account_create(actor=admin, name="Beta account"),
            stage=pipeline_ensure().stages.get(name="Proposal"),
            amount=Decimal("777"),
            expected_close=period.start,
            forecast_category="commit",
        )
    key = period_key(period)
    log_in(client, people["admin"])
    alpha_page = client.get(f"/reports/forecast/?period={key}", **ALPHA)
    alpha_drill = client.get(f"/reports/forecast/opportunities/?period={key}", **ALPHA)
    client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)
    beta_page = client.get(f"/reports/forecast/?period={key}", **BETA)

    assert table(alpha_page.content)["Total"][2] == "3,300.00"
    assert b"Beta deal" not in alpha_drill.content
    assert table(beta_page.content) == {
        "Beta Admin": ["0.00", "0.00", "777.00", "388.50", "0.00", "—", "—"],
        "Total": ["0.00", "0.00", "777.00", "388.50", "0.00", "—", "—"],
    }


def test_the_page_takes_the_same_few_queries_however_many_people(
    client, people, deals, period, django_assert_max_num_queries
):
    log_in(client, people["admin"])
    with django_assert_max_num_queries(17):
        client.get(f"/reports/forecast/?period={period_key(period)}", **ALPHA)


def test_weighted_amounts_are_summed_exactly_and_rounded_once(client, people, period, source):
    """Two deals of 0.50 at 25%: 0.125 each, shown 0.13 each (half up), but 0.25 together,
    on the page and in the drill-down."""
    stage = pipeline_ensure().stages.get(name="Needs analysis")
    account = contact_services.account_create(actor=people["admin"], name="Cents")
    for owner in (people["sam"], people["sue"]):
        services.opportunity_create(
            actor=owner,
            name=f"Cents {owner.full_name}",
            account=account,
            stage=stage,
            amount=Decimal("0.50"),
            expected_close=period.start,
        )
    if source == "counted":
        deal_rollups_refresh()
    log_in(client, people["mona"])
    key = period_key(period)

    rows = table(client.get(f"/reports/forecast/?period={key}", **ALPHA).content)
    drill = client.get(f"/reports/forecast/opportunities/?period={key}&measure=weighted", **ALPHA)

    assert [rows[name][3] for name in ("Sam Seller", "Sue Seller", "Total")] == [
        "0.13",
        "0.13",
        "0.25",
    ]
    assert b'data-testid="drill-weighted">0.25<' in drill.content
