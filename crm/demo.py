"""The demo workspace: one user per role and realistic accounts, contacts and opportunities.

`seed_demo` loads rows with `bulk_create` in batches, so tens of thousands of contacts take
seconds. Faker is seeded so that a seeded tenant looks the same every time.
"""

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from faker import Faker

from campaigns.models import Campaign
from contacts.models import Account, CustomerType, LifecycleStage
from crm.demo_logins import DEMO_PASSWORD, DEMO_USERS
from crm.users.models import PartnerOrganization, Role, Team, User
from crm.users.services import user_create
from opportunities.models import Pipeline
from tracking.models import TimelineEntry

INDUSTRIES = (
    "Software",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Finance",
    "Logistics",
    "Education",
    "Energy",
    "Media",
    "Hospitality",
)
TERRITORIES = ("North", "South", "East", "West")
SOURCES = ("Website", "Trade show", "E-mail campaign", "Referral", "Advertising", "Partner")


def pipeline_ensure() -> Pipeline:
    """The default sales pipeline every tenant is given by its migrations."""
    return Pipeline.objects.get(name="Sales")


def demo_users_ensure() -> list[User]:
    team, _ = Team.objects.get_or_create(name="North")
    partner_org, _ = PartnerOrganization.objects.get_or_create(name="Demo Reseller")
    users = []
    for email, role, name in DEMO_USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = user_create(
                email=email,
                password=DEMO_PASSWORD,
                full_name=name,
                role=role,
                team=team if role in (Role.MANAGER, Role.SALES) else None,
            )
            if role == Role.PARTNER:
                user.partner_organization = partner_org
                user.save(update_fields=["partner_organization"])
        users.append(user)
    return users


@dataclass
class _Pools:
    """Realistic values made once by Faker and recombined at random: Faker per row would spend
    minutes on a million contacts, the pools spend a second."""

    first_names: list[str]
    last_names: list[str]
    companies: list[str]
    cities: list[str]
    countries: list[str]
    jobs: list[str]
    domains: list[str]
    phrases: list[str]

    @classmethod
    def make(cls, fake: Faker) -> "_Pools":
        return cls(
            first_names=list({fake.first_name() for _ in range(800)}),
            last_names=list({fake.last_name() for _ in range(1500)}),
            companies=list({fake.company() for _ in range(3000)}),
            cities=[fake.city() for _ in range(300)],
            countries=[fake.country()[:100] for _ in range(60)],
            jobs=[fake.job()[:150] for _ in range(300)],
            domains=[fake.free_email_domain() for _ in range(20)],
            phrases=[fake.bs().capitalize() for _ in range(300)],
        )


def _copy(table: str, columns: list[str], rows) -> None:
    """Load rows into a table of the current schema with PostgreSQL's COPY."""
    with connection.cursor() as cursor:
        statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        with cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def _new_ids(table: str, after: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE id > %s ORDER BY id", [after])
        return [row[0] for row in cursor.fetchall()]


def _max_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
        return cursor.fetchone()[0]


@transaction.atomic
def demo_seed(*, contacts: int, seed: int = 2026) -> dict[str, int]:
    """Add `contacts` contacts (with a fifth as many accounts and 30% as many opportunities)
    to the current tenant with COPY, in one transaction. Runs in the current tenant's schema."""
    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    pools = _Pools.make(fake)
    partner_org, _ = PartnerOrganization.objects.get_or_create(name="Demo Reseller")
    owners = [u.pk for u in demo_users_ensure() if u.role in (Role.SALES, Role.MANAGER, Role.ADMIN)]
    stages = list(pipeline_ensure().stages.all())
    now = timezone.now()
    pick = rng.choice

    n_accounts = max(1, contacts // 5)
    before = _max_id("contacts_account")
    account_names = []

    def account_rows():
        for i in range(n_accounts):
            name = pick(pools.companies)
            name = name if i < len(pools.companies) else f"{name} {pick(pools.cities)}"
            account_names.append(name)
            domain = "".join(ch for ch in name.lower() if ch.isalnum())[:40] + ".example"
            yield (
                name,
                domain,
                pick(INDUSTRIES),
                pick((10, 50, 200, 1000, 5000)),
                pick(TERRITORIES),
                pick(CustomerType.values),
                f"+1 555 {i:07d}",
                "",
                "",
                pick(pools.cities),
                pick(pools.countries),
                "{}",
                pick(owners),
                now,
                now,
            )

    _copy(
        "contacts_account",
        [
            "name",
            "domain",
            "industry",
            "employees",
            "territory",
            "customer_type",
            "phone",
            "street",
            "postal_code",
            "city",
            "country",
            "tags",
            "owner_id",
            "created_at",
            "updated_at",
        ],
        account_rows(),
    )
    account_ids = _new_ids("contacts_account", before)
    names = dict(zip(account_ids, account_names, strict=True))
    # The demo reseller works one account in twenty.
    Account.shared_with.through.objects.bulk_create(
        Account.shared_with.through(account_id=pk, partnerorganization_id=partner_org.pk)
        for pk in account_ids[::20]
    )

    contacts_before = _max_id("contacts_contact")

    def contact_rows():
        for i in range(contacts):
            first, last = pick(pools.first_names), pick(pools.last_names)
            email = f"{first}.{last}{i}@{pick(pools.domains)}".lower().replace(" ", "")
            yield (
                first,
                last,
                email,
                "{}",
                f"+1 555 {i:07d}",
                "{}",
                pick(pools.jobs),
                pick(account_ids),
                pick(owners),
                pick(TERRITORIES),
                pick(CustomerType.values),
                pick(SOURCES),
                pick(LifecycleStage.values),
                "{}",
                False,
                False,
                False,
                now,
                now,
            )

    _copy(
        "contacts_contact",
        [
            "first_name",
            "last_name",
            "email",
            "other_emails",
            "phone",
            "other_phones",
            "title",
            "account_id",
            "owner_id",
            "territory",
            "customer_type",
            "source",
            "lifecycle_stage",
            "interests",
            "do_not_email",
            "do_not_call",
            "do_not_mail",
            "created_at",
            "updated_at",
        ],
        contact_rows(),
    )

    n_opportunities = int(contacts * 0.3)

    def opportunity_rows():
        for _ in range(n_opportunities):
            account = pick(account_ids)
            stage = pick(stages)
            closed = stage.is_won or stage.is_lost
            yield (
                f"{names[account]} - {pick(pools.phrases)}"[:200],
                account,
                pick(owners),
                stage.pk,
                Decimal(rng.randint(5, 500)) * 100,
                "USD",
                (now + timedelta(days=rng.randint(-60, 180))).date(),
                "closed" if closed else pick(("pipeline", "best_case", "commit")),
                "",
                "",
                now if closed else None,
                now,
                now,
            )

    _copy(
        "opportunities_opportunity",
        [
            "name",
            "account_id",
            "owner_id",
            "stage_id",
            "amount",
            "currency",
            "expected_close",
            "forecast_category",
            "next_step",
            "close_reason",
            "closed_at",
            "created_at",
            "updated_at",
        ],
        opportunity_rows(),
    )
    with connection.cursor() as cursor:
        # Every opportunity's first stage, set-wise.
        cursor.execute(
            "INSERT INTO opportunities_stagechange (opportunity_id, to_stage_id, changed_at, "
            "changed_by_id) SELECT id, stage_id, created_at, owner_id "
            "FROM opportunities_opportunity o WHERE NOT EXISTS (SELECT 1 FROM "
            "opportunities_stagechange s WHERE s.opportunity_id = o.id)"
        )
    sample = _new_ids("contacts_contact", contacts_before)[:500]
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            contact_id=pk,
            kind=pick(("call", "meeting", "email", "note")),
            occurred_at=now - timedelta(days=rng.randint(0, 365)),
            summary=fake.sentence(nb_words=8),
        )
        for pk in sample
    )
    if not Campaign.objects.exists():
        Campaign.objects.bulk_create(
            Campaign(
                name=f"{kind.label} {now.year}",
                kind=kind,
                budget=Decimal(rng.randint(1, 50)) * 1000,
                starts_on=(now - timedelta(days=rng.randint(0, 200))).date(),
            )
            for kind in Campaign.Kind
        )
    return {"accounts": n_accounts, "contacts": contacts, "opportunities": n_opportunities}
