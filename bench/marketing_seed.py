"""Marketing history for a benchmark tenant that already has contacts and opportunities (as
bench_sales and bench_reports seed them): campaigns of every marketing tool over two years with
their cost entries, campaign members (most only targeted or opening, a third of the contacts
engaging: clicks, responses, conversions), contacts whose source names a campaign, and filled
lead forms. Written with COPY in one transaction, in the current tenant's schema.

Call `marketing_history_seed()` once; it does nothing when the tenant already has campaign
members.
"""

import random
from datetime import timedelta
from decimal import Decimal

CAMPAIGNS = 40
TERRITORIES = ("North", "South", "East", "West")
KINDS = ("email", "web", "event", "direct_mail", "advertising", "pr")


def _copy(cursor, table: str, columns: str, rows) -> None:
    with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def marketing_history_seed(*, engaged_share: float = 0.3, seed: int = 17) -> dict[str, int]:
    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.models import CampaignMember

    if CampaignMember.objects.exists():
        return {}
    rng = random.Random(seed)
    now = timezone.now()
    today = now.date()
    with transaction.atomic(), connection.cursor() as cursor:
        campaigns = []
        for number in range(CAMPAIGNS):
            starts = today - timedelta(days=rng.randint(30, 730))
            ends = min(starts + timedelta(days=rng.randint(7, 120)), today)
            cost = Decimal(rng.randint(5, 200)) * 100
            campaigns.append(
                (f"Bench campaign {number}", KINDS[number % len(KINDS)], starts, ends, cost)
            )
        _copy(
            cursor,
            "campaigns_campaign",
            "name, kind, starts_on, ends_on, actual_cost, budget, status, goal, created_at, "
            "send_state, window_timezone",
            ((*c, c[4], "completed", "", now, "draft", "UTC") for c in campaigns),
        )
        cursor.execute(
            "SELECT id, starts_on, ends_on, actual_cost FROM campaigns_campaign "
            "WHERE name LIKE 'Bench campaign %%' ORDER BY id"
        )
        made = cursor.fetchall()
        # Half of the campaigns have their cost entered by month, tagged by territory.
        entries = []
        for campaign_id, starts, ends, cost in made[::2]:
            months = max(1, (ends - starts).days // 30)
            for i in range(months):
                first = starts + timedelta(days=30 * i)
                last = min(first + timedelta(days=29), ends)
                entries.append(
                    (
                        campaign_id,
                        first,
                        last,
                        (cost / months).quantize(Decimal("0.01")),
                        rng.choice(TERRITORIES),
                        "",
                        "",
                        "",
                    )
                )
        _copy(
            cursor,
            "reports_costentry",
            "campaign_id, period_start, period_end, amount, territory, customer_type, "
            "product_type, note",
            entries,
        )
        cursor.execute("SELECT id, created_at FROM contacts_contact ORDER BY id")
        contacts = cursor.fetchall()
        members, seen = [], set()
        statuses_quiet = ("targeted", "sent", "opened")
        statuses_engaged = ("clicked", "clicked", "responded", "responded", "converted")
        for contact_id, created in contacts:
            engaged = rng.random() < engaged_share
            for _ in range(rng.choice((1, 1, 2, 3)) if engaged else rng.choice((0, 0, 1))):
                campaign_id = made[rng.randrange(len(made))][0]
                if (campaign_id, contact_id) in seen:
                    continue
                seen.add((campaign_id, contact_id))
                at = min(created + timedelta(days=rng.expovariate(1 / 60)), now)
                status = rng.choice(statuses_engaged if engaged else statuses_quiet)
                members.append((campaign_id, contact_id, status, at, at))
        _copy(
            cursor,
            "campaigns_campaignmember",
            "campaign_id, contact_id, status, added_at, updated_at",
            members,
        )
        # One contact in twenty came in through a campaign named as their source.
        cursor.execute(
            "UPDATE contacts_contact c SET source = cp.name FROM campaigns_campaign cp "
            "WHERE c.id %% 20 = 0 AND cp.name = 'Bench campaign ' || (c.id %% %s)",
            [CAMPAIGNS],
        )
        sourced = cursor.rowcount
        cursor.execute(
            "INSERT INTO leads_leadform (name, key, is_active, campaign_id, intro, "
            "contact_fields, required_fields, interests, submit_label, thank_you_message, "
            "redirect_url, double_opt_in, assignment, follow_up_days, created_at, updated_at) "
            "SELECT 'Bench form ' || id, gen_random_uuid(), true, id, '', '{}', '{}', '{}', "
            "'Send', 'Thanks', '', false, 'round_robin', 1, now(), now() "
            "FROM campaigns_campaign WHERE name LIKE 'Bench campaign %%' AND kind = 'web'"
        )
        cursor.execute(
            "INSERT INTO leads_formsubmission (form_id, contact_id, status, data, user_agent, "
            "page_url, submitted_at, processed_at, created_contact) "
            "SELECT f.id, m.contact_id, 'processed', '{}', '', '', m.updated_at, m.updated_at, "
            "false FROM campaigns_campaignmember m JOIN leads_leadform f "
            "ON f.campaign_id = m.campaign_id WHERE m.status IN ('responded', 'converted')"
        )
        submissions = cursor.rowcount
    return {
        "campaigns": len(made),
        "cost_entries": len(entries),
        "members": len(members),
        "sourced_contacts": sourced,
        "form_submissions": submissions,
    }


def recent_activity_seed(*, contacts: int = 2000, seed: int | None = None) -> None:
    """A few minutes' worth of marketing work for an incremental refresh to read: new clicks
    and responses, and opportunities opened on the accounts of the people who responded."""
    from django.db import connection

    rng = random.Random(seed)
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM campaigns_campaign WHERE name LIKE 'Bench campaign %%'")
        campaigns = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT min(id), max(id) FROM contacts_contact")
        first, last = cursor.fetchone()
        chosen = [rng.randint(first, last) for _ in range(contacts)]
        cursor.execute(
            "INSERT INTO campaigns_campaignmember (campaign_id, contact_id, status, added_at, "
            "updated_at) SELECT (%s::bigint[])[1 + (c %% %s)], c, 'responded', now(), now() "
            "FROM (SELECT DISTINCT unnest(%s::bigint[]) AS c) chosen "
            "ON CONFLICT (campaign_id, contact_id) "
            "DO UPDATE SET status = 'responded', updated_at = now()",
            [campaigns, len(campaigns), chosen],
        )
        cursor.execute(
            "INSERT INTO opportunities_opportunity (name, account_id, stage_id, amount, currency, "
            "forecast_category, next_step, close_reason, created_at, updated_at) "
            "SELECT 'Bench new deal', c.account_id, (SELECT min(id) FROM opportunities_stage), "
            "1000, 'USD', 'pipeline', '', '', now(), now() FROM contacts_contact c "
            "WHERE c.id = ANY(%s) AND c.account_id IS NOT NULL LIMIT 200",
            [chosen],
        )
