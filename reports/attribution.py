"""Marketing attribution: which campaigns touched the people behind each lead, opportunity and
won customer, kept as rollups that the marketing and acquisition-cost pages read: the touches
with each lead's attribution (MarketingTouch), each campaign's share of each opportunity
(MarketingCredit, worked out with window functions over the touches), won deals with their
source (WonDeal), and those summed by day and campaign (MarketingDay) and by month, campaign
and slice (MarketingMonth).

Definitions (the reports' help text says the same in fewer words):

- A **touch** is a campaign reaching a contact in a way that shows interest, at the earliest
  moment we know of:
  * the contact is a campaign member who clicked a link in its e-mail, responded (filled one of
    its lead forms) or converted: at the member's last status change (`updated_at`; opens do
    not count, mail clients fetch pixels on their own);
  * the contact filled a lead form that answers the campaign: when the form was sent in;
  * the contact's source names the campaign (the lead forms set it so for the contacts they
    bring in): when the contact was created.
  One touch per contact and campaign; a later refresh never moves it later (a member who
  responded and later converted keeps the time they responded).
- A **lead** is a contact with a touch, counted in the period of their first touch and credited
  over all their touches: first touch, last touch, or an even 1/n share to each.
- An **opportunity's people** are its primary contact; without one, every contact of its
  account. Its touches are their touches up to the moment the opportunity was created (what
  brought the deal, not what happened while it was worked), so the same touches credit its
  creation, its win and its revenue, and a campaign never gets more won deals than
  opportunities. First touch gives the whole opportunity to the earliest of those touches,
  last touch to the latest, even split 1/n to each (a campaign that touched two of the
  account's people gets two shares). Opportunities without touches are credited to nobody.
- An opportunity counts in the period it was created; its win (and revenue, its amount as
  entered, whatever the currency) in the period of `closed_at` when its stage is a won stage.
  A **won customer** is an account whose earliest win is that opportunity: credited like the
  opportunity, in the period of that win.

Freshness: `marketing_rollup_refresh` runs from Celery beat every few minutes in each tenant
(reports.marketing_tasks). It reads only what changed since the last run (campaign members,
form submissions, contacts, accounts and opportunities changed since then, with a margin for
transactions that committed late), recomputes the touches and the accounts those changes
reach, and adds the difference (the recomputed rows before and after) to the daily and monthly
sums. Once a day it rebuilds everything, which also drops what deletions, renamed campaigns,
contacts moved to another account and changed product types left behind.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import CampaignMember
from reports.models import MarketingMeasures, RollupState

ROLLUP = "marketing"
# Changes committed this long after their timestamp are still read by the next run.
OVERLAP = timedelta(minutes=10)
REBUILD_EVERY = timedelta(hours=24)
RESPONSES = (
    CampaignMember.Status.CLICKED,
    CampaignMember.Status.RESPONDED,
    CampaignMember.Status.CONVERTED,
)

# The working tables of a refresh (temporary: this session's own).
TEMP_TABLES = (
    "touch_found",
    "touched_contacts",
    "changed_contacts",
    "affected_accounts",
    "credit_opps",
    "credited",
    "fact_changes",
)

_TOUCHES_FOUND = """
CREATE TEMP TABLE touch_found AS
SELECT contact_id, campaign_id, min(at) AS at FROM (
    SELECT m.contact_id, m.campaign_id, m.updated_at AS at
    FROM campaigns_campaignmember m
    WHERE m.status = ANY(%(responses)s) AND ({members_since})
    UNION ALL
    SELECT s.contact_id, f.campaign_id, s.submitted_at
    FROM leads_formsubmission s JOIN leads_leadform f ON f.id = s.form_id
    WHERE s.status = 'processed' AND s.contact_id IS NOT NULL AND f.campaign_id IS NOT NULL
      AND ({submissions_since})
    UNION ALL
    SELECT c.id, cp.id, c.created_at
    FROM contacts_contact c JOIN campaigns_campaign cp ON lower(cp.name) = lower(c.source)
    WHERE c.source <> '' AND ({contacts_since})
) found
GROUP BY contact_id, campaign_id
"""

# New touches, and known ones now seen earlier; the contacts whose touches changed are noted.
_TOUCHES_UPSERT = """
WITH upserted AS (
    INSERT INTO reports_marketingtouch
        (contact_id, campaign_id, touched_at, lead_at, is_first, is_last, of_touches,
         territory, customer_type)
    SELECT contact_id, campaign_id, at, at, false, false, 0, '', '' FROM touch_found
    ON CONFLICT (contact_id, campaign_id)
    DO UPDATE SET touched_at = EXCLUDED.touched_at
    WHERE EXCLUDED.touched_at < reports_marketingtouch.touched_at
    RETURNING contact_id
)
INSERT INTO touched_contacts SELECT DISTINCT contact_id FROM upserted
"""

# A rebuild drops the touches nothing shows any more (a member removed, a contact deleted).
_TOUCHES_PRUNE = """
DELETE FROM reports_marketingtouch t
WHERE NOT EXISTS (
    SELECT 1 FROM touch_found f WHERE f.contact_id = t.contact_id AND f.campaign_id = t.campaign_id
)
"""

# Contacts whose lead attribution or slice may have changed: new or earlier touches, or the
# contact itself edited (territory, customer type, account).
_CHANGED_CONTACTS = """
CREATE TEMP TABLE changed_contacts AS
SELECT contact_id FROM touched_contacts
UNION
SELECT c.id FROM contacts_contact c
WHERE c.updated_at >= %(since)s
  AND EXISTS (SELECT 1 FROM reports_marketingtouch t WHERE t.contact_id = c.id)
"""

_LEADS = """
UPDATE reports_marketingtouch t
SET lead_at = w.lead_at, is_first = w.from_first = 1, is_last = w.from_last = 1,
    of_touches = w.n, territory = c.territory, customer_type = c.customer_type
FROM (
    SELECT id, contact_id,
           min(touched_at) OVER whole AS lead_at,
           row_number() OVER (PARTITION BY contact_id ORDER BY touched_at, campaign_id)
               AS from_first,
           row_number() OVER (PARTITION BY contact_id ORDER BY touched_at DESC, campaign_id DESC)
               AS from_last,
           count(*) OVER whole AS n
    FROM reports_marketingtouch
    WHERE {scope}
    WINDOW whole AS (PARTITION BY contact_id)
) w
JOIN contacts_contact c ON c.id = w.contact_id
WHERE t.id = w.id
  AND (t.lead_at, t.is_first, t.is_last, t.of_touches, t.territory, t.customer_type)
      IS DISTINCT FROM (w.lead_at, w.from_first = 1, w.from_last = 1, w.n, c.territory,
                        c.customer_type)
"""

# Accounts whose opportunities' credits may have changed.
_AFFECTED_ACCOUNTS = """
CREATE TEMP TABLE affected_accounts AS
SELECT c.account_id FROM contacts_contact c JOIN changed_contacts x ON x.contact_id = c.id
WHERE c.account_id IS NOT NULL
UNION
SELECT o.account_id FROM opportunities_opportunity o WHERE o.updated_at >= %(since)s
UNION
SELECT o.account_id FROM opportunities_opportunity o
JOIN changed_contacts x ON x.contact_id = o.primary_contact_id
UNION
SELECT a.id FROM contacts_account a WHERE a.updated_at >= %(since)s
"""

# The opportunities to recompute, each with its win and whether that win was its account's
# first (all of an account's opportunities are recomputed together for that).
_OPPORTUNITIES = """
CREATE TEMP TABLE credit_opps AS
SELECT o.id, o.account_id, o.primary_contact_id, o.created_at, o.amount, o.won_at,
       o.won_at IS NOT NULL
       AND row_number() OVER (PARTITION BY o.account_id ORDER BY o.won_at ASC NULLS LAST, o.id)
           = 1 AS first_win
FROM (
    SELECT o.id, o.account_id, o.primary_contact_id, o.created_at, o.amount,
           CASE WHEN st.is_won THEN COALESCE(o.closed_at, o.updated_at) END AS won_at
    FROM opportunities_opportunity o JOIN opportunities_stage st ON st.id = o.stage_id
    WHERE {scope}
) o
"""

_CREDITED = """
CREATE TEMP TABLE credited AS
WITH people AS (
    SELECT id AS opportunity_id, primary_contact_id AS contact_id, created_at
    FROM credit_opps WHERE primary_contact_id IS NOT NULL
    UNION ALL
    SELECT o.id, c.id, o.created_at
    FROM credit_opps o JOIN contacts_contact c ON c.account_id = o.account_id
    WHERE o.primary_contact_id IS NULL
), touched AS (
    SELECT p.opportunity_id, t.campaign_id,
           row_number() OVER (PARTITION BY p.opportunity_id
                              ORDER BY t.touched_at, t.campaign_id, t.contact_id) AS from_first,
           row_number() OVER (PARTITION BY p.opportunity_id
                              ORDER BY t.touched_at DESC, t.campaign_id DESC, t.contact_id DESC)
               AS from_last,
           count(*) OVER (PARTITION BY p.opportunity_id) AS n
    FROM people p
    JOIN reports_marketingtouch t ON t.contact_id = p.contact_id AND t.touched_at <= p.created_at
)
SELECT opportunity_id, campaign_id, count(*) AS touches, max(n) AS of_touches,
       bool_or(from_first = 1) AS is_first, bool_or(from_last = 1) AS is_last
FROM touched
GROUP BY opportunity_id, campaign_id
"""

_CREDITS_DELETE = """
DELETE FROM {table}
WHERE account_id IN (SELECT account_id FROM affected_accounts)
   OR opportunity_id IN (SELECT id FROM credit_opps)
"""

_CREDITS_INSERT = """
WITH main_product AS (
    -- Each credited opportunity's main product: the line item worth the most.
    SELECT DISTINCT ON (li.opportunity_id) li.opportunity_id, p.product_type
    FROM opportunities_lineitem li JOIN opportunities_product p ON p.id = li.product_id
    WHERE li.opportunity_id IN (SELECT opportunity_id FROM credited)
    ORDER BY li.opportunity_id, li.quantity * li.unit_price * (100 - li.discount_percent) DESC,
             li.id
)
INSERT INTO reports_marketingcredit
    (opportunity_id, campaign_id, account_id, created_at, won_at, amount, first_win, territory,
     customer_type, product_type, touches, of_touches, is_first, is_last)
SELECT o.id, k.campaign_id, o.account_id, o.created_at, o.won_at, o.amount, o.first_win,
       a.territory, a.customer_type, COALESCE(main.product_type, ''), k.touches, k.of_touches,
       k.is_first, k.is_last
FROM credited k
JOIN credit_opps o ON o.id = k.opportunity_id
JOIN contacts_account a ON a.id = o.account_id
LEFT JOIN main_product main ON main.opportunity_id = o.id
"""

# A won deal's source: its primary contact's; without one (or when it has none), that of the
# account's first contact that has one.
_WON_DEALS_INSERT = """
INSERT INTO reports_wondeal
    (opportunity_id, account_id, won_at, amount, first_win, source, first_campaign_id)
SELECT o.id, o.account_id, o.won_at, o.amount, o.first_win,
       COALESCE(NULLIF(pc.source, ''), first_source.source, ''), k.campaign_id
FROM credit_opps o
LEFT JOIN contacts_contact pc ON pc.id = o.primary_contact_id
LEFT JOIN LATERAL (
    SELECT c.source FROM contacts_contact c
    WHERE c.account_id = o.account_id AND c.source <> ''
    ORDER BY c.id
    LIMIT 1
) first_source ON COALESCE(pc.source, '') = ''
LEFT JOIN credited k ON k.opportunity_id = o.id AND k.is_first
WHERE o.won_at IS NOT NULL
"""


# What each row (as t) of the rollups adds to each measure under each model: a touch row to
# leads (on the day of the lead), a credit row to opportunities (on the day it was created) and
# to won deals, customers and revenue (on the day it was won). The daily and monthly rollups
# sum these; pages that slice add the same for the days at the ends of their period.
LEAD_FACTS = {
    "first": "t.is_first::int",
    "last": "t.is_last::int",
    "even": "1::numeric / t.of_touches",
}
OPPORTUNITY_FACTS = {
    "first": "t.is_first::int",
    "last": "t.is_last::int",
    "even": "t.touches::numeric / t.of_touches",
}
CUSTOMER_FACTS = {
    model: f"CASE WHEN t.first_win THEN {share} ELSE 0 END"
    for model, share in OPPORTUNITY_FACTS.items()
}
REVENUE_FACTS = {model: f"t.amount * {share}" for model, share in OPPORTUNITY_FACTS.items()}
# The rows whose share is nothing under each model, left out where it saves reading them.
CREDITED = {"first": "t.is_first", "last": "t.is_last", "even": "TRUE"}


def local_date(column: str) -> str:
    """SQL for the day of a moment in the site's time zone (the `tz` parameter)."""
    return f"({column} AT TIME ZONE %(tz)s)::date"


def _measure_columns() -> list[str]:
    return [
        f"{m}_{model}" for m in MarketingMeasures.MEASURES for model in MarketingMeasures.MODELS
    ]


def _source_facts(kind: str, sign: str) -> str:
    """The SELECT list of one source's rows (as t, times `sign`) for the rollups: zeros for
    the measures it does not feed."""
    feeds = {
        "lead": {"leads": LEAD_FACTS},
        "created": {"opportunities": OPPORTUNITY_FACTS},
        "won": {
            "won": OPPORTUNITY_FACTS,
            "customers": CUSTOMER_FACTS,
            "revenue": REVENUE_FACTS,
        },
    }[kind]

    def fact(measure: str, model: str) -> str:
        if measure not in feeds:
            return "0::numeric"
        return f"({feeds[measure][model]})::numeric{sign}"

    return ", ".join(
        f"{fact(measure, model)} AS {measure}_{model}"
        for measure in MarketingMeasures.MEASURES
        for model in MarketingMeasures.MODELS
    )


# The rollups' grains: the table, its key columns and how a moment becomes its period.
_GRAINS = {
    "month": (
        "reports_marketingmonth",
        ("month", "campaign_id", "territory", "customer_type", "product_type"),
        "date_trunc('month', {} AT TIME ZONE %(tz)s)::date",
    ),
    "day": ("reports_marketingday", ("day", "campaign_id"), "({} AT TIME ZONE %(tz)s)::date"),
}


# The rows a refresh recounts, as they were (sign -1) and as they are now (+1): added to the
# daily and monthly rollups, what did not change cancels out.
_CHANGES = """
CREATE TEMP TABLE fact_changes (
    sign int, source text, at timestamptz, campaign_id bigint, territory text,
    customer_type text, product_type text, is_first bool, is_last bool, touches int,
    of_touches int, first_win bool, amount numeric, won_at timestamptz
)
"""
_LEAD_CHANGES = """
INSERT INTO fact_changes
SELECT %(sign)s, 'lead', lead_at, campaign_id, territory, customer_type, '', is_first, is_last,
       1, of_touches, false, 0, NULL
FROM reports_marketingtouch
WHERE contact_id IN (SELECT contact_id FROM changed_contacts) AND of_touches > 0
"""
_CREDIT_CHANGES = """
INSERT INTO fact_changes
SELECT %(sign)s, 'credit', created_at, campaign_id, territory, customer_type, product_type,
       is_first, is_last, touches, of_touches, first_win, amount, won_at
FROM reports_marketingcredit
WHERE {scope}
"""
_OLD_CREDITS = (
    "account_id IN (SELECT account_id FROM affected_accounts) "
    "OR opportunity_id IN (SELECT id FROM credit_opps)"
)
_NEW_CREDITS = "opportunity_id IN (SELECT id FROM credit_opps)"


def _rollup_sql(grain: str, *, changes: bool) -> str:
    """Count a rollup (MarketingMonth or MarketingDay): from all the rows into the emptied
    table, or add fact_changes to the cells they fall in."""
    table, keys, period = _GRAINS[grain]
    columns = _measure_columns()
    if changes:
        sign = " * t.sign"
        leads, lead_at = "fact_changes t WHERE t.source = 'lead'", "t.at"
        credits, created_at = "fact_changes t WHERE t.source = 'credit'", "t.at"
        add = ", ".join(f"{c} = {table}.{c} + EXCLUDED.{c}" for c in columns)
        conflict = f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {add}"
    else:
        sign, conflict = "", ""
        leads, lead_at = "reports_marketingtouch t WHERE TRUE", "t.lead_at"
        credits, created_at = "reports_marketingcredit t WHERE TRUE", "t.created_at"
    return f"""
INSERT INTO {table} ({", ".join(keys)}, {", ".join(columns)})
SELECT {", ".join(keys)}, {", ".join(f"sum({c})" for c in columns)}
FROM (
    SELECT {period.format(lead_at)} AS {keys[0]}, t.campaign_id, t.territory, t.customer_type,
           '' AS product_type, {_source_facts("lead", sign)}
    FROM {leads}
    UNION ALL
    SELECT {period.format(created_at)}, t.campaign_id, t.territory, t.customer_type,
           t.product_type, {_source_facts("created", sign)}
    FROM {credits}
    UNION ALL
    SELECT {period.format("t.won_at")}, t.campaign_id, t.territory, t.customer_type,
           t.product_type, {_source_facts("won", sign)}
    FROM {credits} AND t.won_at IS NOT NULL
) facts
GROUP BY {", ".join(keys)}
HAVING {" OR ".join(f"sum({c}) <> 0" for c in columns)}
{conflict}
"""


def _db_now(cursor) -> datetime:
    cursor.execute("SELECT now()")
    return cursor.fetchone()[0]


def marketing_rollup_refresh(*, rebuild: bool = False) -> dict[str, int]:
    """Bring the marketing rollups up to date in the current tenant's schema: incrementally
    from the changes since the last run, or from scratch when asked, on the first run and once
    a day. One transaction under a lock on the rollup's state row, so a page reads either the
    old figures or the new ones: a refresh that finds another at work returns at once (that one
    is doing the work), a rebuild waits for it. Returns counts of what it did."""
    RollupState.objects.get_or_create(name=ROLLUP)
    with transaction.atomic(), connection.cursor() as cursor:
        state = (
            RollupState.objects.select_for_update(skip_locked=not rebuild)
            .filter(name=ROLLUP)
            .first()
        )
        if state is None:
            return {"skipped": 1}
        now = _db_now(cursor)
        since_mark = state.marks.get("since")
        rebuild = (
            rebuild
            or since_mark is None
            or state.rebuilt_at is None
            or now - state.rebuilt_at >= REBUILD_EVERY
        )
        since = None if rebuild else datetime.fromisoformat(since_mark) - OVERLAP
        done = _refresh(cursor, since=since)
        state.marks = {**state.marks, "since": now.isoformat()}
        state.refreshed_at = now
        if rebuild:
            state.rebuilt_at = now
        state.save()
    return {**done, "rebuilt": int(rebuild)}


def _refresh(cursor, *, since: datetime | None) -> dict[str, int]:
    params = {"since": since, "responses": list(RESPONSES), "tz": settings.TIME_ZONE}
    changed = "TRUE" if since is None else "{} >= %(since)s"
    cursor.execute(
        _TOUCHES_FOUND.format(
            members_since=changed.format("m.updated_at"),
            submissions_since=changed.format("COALESCE(s.processed_at, s.submitted_at)"),
            contacts_since=changed.format("c.updated_at"),
        ),
        params,
    )
    cursor.execute("CREATE TEMP TABLE touched_contacts (contact_id bigint)")
    cursor.execute(_TOUCHES_UPSERT)
    touched = cursor.rowcount
    if since is None:
        cursor.execute(_TOUCHES_PRUNE)
        cursor.execute(_LEADS.format(scope="TRUE"))
        cursor.execute(_OPPORTUNITIES.format(scope="TRUE"))
        cursor.execute("DELETE FROM reports_marketingcredit")
        cursor.execute("DELETE FROM reports_wondeal")
        # The deletes below then find nothing; the empty table keeps the statements shared.
        cursor.execute("CREATE TEMP TABLE affected_accounts (account_id bigint)")
    else:
        cursor.execute(_CHANGES)
        cursor.execute(_CHANGED_CONTACTS, params)
        cursor.execute(_LEAD_CHANGES, {"sign": -1})
        cursor.execute(
            _LEADS.format(scope="contact_id IN (SELECT contact_id FROM changed_contacts)")
        )
        cursor.execute(_LEAD_CHANGES, {"sign": 1})
        cursor.execute(_AFFECTED_ACCOUNTS, params)
        cursor.execute(
            _OPPORTUNITIES.format(
                scope="o.account_id IN (SELECT account_id FROM affected_accounts)"
            )
        )
        cursor.execute(_CREDIT_CHANGES.format(scope=_OLD_CREDITS), {"sign": -1})
    cursor.execute("ANALYZE credit_opps")
    cursor.execute(_CREDITED)
    cursor.execute("ANALYZE credited")
    for table in ("reports_marketingcredit", "reports_wondeal"):
        cursor.execute(_CREDITS_DELETE.format(table=table))
    cursor.execute(_CREDITS_INSERT)
    credits = cursor.rowcount
    cursor.execute(_WON_DEALS_INSERT)
    won_deals = cursor.rowcount
    if since is None:
        for grain, (table, _, _) in _GRAINS.items():
            cursor.execute(f"DELETE FROM {table}")
            cursor.execute(_rollup_sql(grain, changes=False), params)
    else:
        cursor.execute(_CREDIT_CHANGES.format(scope=_NEW_CREDITS), {"sign": 1})
        for grain, (table, _, _) in _GRAINS.items():
            cursor.execute(_rollup_sql(grain, changes=True), params)
            # Cells whose changes cancelled out to nothing, as a rebuild would not have them.
            nothing = " AND ".join(f"{c} = 0" for c in _measure_columns())
            cursor.execute(f"DELETE FROM {table} WHERE {nothing}")
    # Dropped here rather than at commit: a caller may run this inside a longer transaction.
    cursor.execute(f"DROP TABLE IF EXISTS {', '.join(TEMP_TABLES)}")
    return {
        "touched_contacts": touched,
        "credits": credits,
        "won_deals": won_deals,
    }


def marketing_freshness(*, now: datetime | None = None) -> str | None:
    """The line the marketing pages show about how fresh their figures are; None if the rollup
    was never refreshed."""
    state = RollupState.objects.filter(name=ROLLUP).first()
    if state is None or state.refreshed_at is None:
        return None
    minutes = ((now or timezone.now()) - state.refreshed_at).total_seconds() // 60
    ago = "less than a minute ago" if minutes < 1 else f"{minutes:.0f} min ago"
    when = timezone.localtime(state.refreshed_at).strftime("%Y-%m-%d %H:%M %Z")
    every = settings.CELERY_BEAT_SCHEDULE["marketing-rollup"]["schedule"] / 60
    return f"Figures as of {when} ({ago}); brought up to date every {every:.0f} minutes."
