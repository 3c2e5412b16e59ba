"""The demo workspace: one user per role and realistic accounts, contacts and opportunities.

`seed_demo` loads rows with `bulk_create` in batches, so tens of thousands of contacts take
seconds. Faker is seeded so that a seeded tenant looks the same every time.
"""

import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from faker import Faker

from campaigns.models import Campaign
from contacts.models import Account, Contact, CustomerType, LifecycleStage
from crm.demo_logins import DEMO_PASSWORD, DEMO_USERS
from crm.users.models import PartnerOrganization, Role, Team, User
from crm.users.services import user_create
from opportunities.models import Opportunity, Pipeline, Stage, StageChange
from tracking.models import TimelineEntry

DEFAULT_STAGES = (
    ("Qualification", 10),
    ("Needs analysis", 25),
    ("Proposal", 50),
    ("Negotiation", 75),
    ("Closed won", 100),
    ("Closed lost", 0),
)
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
BATCH = 5000


def pipeline_ensure() -> Pipeline:
    """The tenant's default sales pipeline with its stages and probabilities."""
    pipeline, created = Pipeline.objects.get_or_create(name="Sales")
    if created:
        Stage.objects.bulk_create(
            Stage(
                pipeline=pipeline,
                name=name,
                position=i,
                probability=p,
                is_won=name == "Closed won",
                is_lost=name == "Closed lost",
            )
            for i, (name, p) in enumerate(DEFAULT_STAGES)
        )
    return pipeline


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


@transaction.atomic
def demo_seed(*, contacts: int, seed: int = 2026) -> dict[str, int]:
    """Add `contacts` contacts (with a fifth as many accounts and 30% as many opportunities)
    to the current tenant. Runs in the current tenant's schema."""
    fake = Faker()
    Faker.seed(seed)
    rng = random.Random(seed)
    partner_org, _ = PartnerOrganization.objects.get_or_create(name="Demo Reseller")
    owners = [u for u in demo_users_ensure() if u.role in (Role.SALES, Role.MANAGER, Role.ADMIN)]
    stages = list(pipeline_ensure().stages.all())
    now = timezone.now()

    n_accounts = max(1, contacts // 5)
    accounts = Account.objects.bulk_create(
        (
            Account(
                name=fake.company(),
                domain=fake.domain_name(),
                industry=rng.choice(INDUSTRIES),
                phone=fake.phone_number()[:50],
                city=fake.city(),
                country=fake.country()[:100],
                territory=rng.choice(TERRITORIES),
                customer_type=rng.choice(CustomerType.values),
                employees=rng.choice((10, 50, 200, 1000, 5000)),
                owner=rng.choice(owners),
            )
            for _ in range(n_accounts)
        ),
        batch_size=BATCH,
    )
    # The demo reseller works one account in twenty.
    Account.shared_with.through.objects.bulk_create(
        Account.shared_with.through(account_id=account.pk, partnerorganization_id=partner_org.pk)
        for account in accounts[::20]
    )
    stage_values = LifecycleStage.values
    created_contacts = Contact.objects.bulk_create(
        (
            Contact(
                first_name=fake.first_name(),
                last_name=fake.last_name(),
                email=f"{fake.user_name()}{i}@{fake.free_email_domain()}",
                phone=fake.phone_number()[:50],
                title=fake.job()[:150],
                account=rng.choice(accounts),
                owner=rng.choice(owners),
                lifecycle_stage=rng.choice(stage_values),
            )
            for i in range(contacts)
        ),
        batch_size=BATCH,
    )
    n_opportunities = int(contacts * 0.3)
    opportunities = Opportunity.objects.bulk_create(
        (_opportunity(fake, rng, accounts, stages, owners, now) for _ in range(n_opportunities)),
        batch_size=BATCH,
    )
    StageChange.objects.bulk_create(
        (
            StageChange(opportunity=o, to_stage=o.stage, changed_at=now, changed_by=o.owner)
            for o in opportunities
        ),
        batch_size=BATCH,
    )
    TimelineEntry.objects.bulk_create(
        (
            TimelineEntry(
                contact=contact,
                kind=rng.choice(TimelineEntry.Kind.values),
                occurred_at=now - timedelta(days=rng.randint(0, 365)),
                summary=fake.sentence(nb_words=8),
            )
            for contact in created_contacts[: min(len(created_contacts), 500)]
        ),
        batch_size=BATCH,
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


def _opportunity(fake, rng, accounts, stages, owners, now) -> Opportunity:
    account = rng.choice(accounts)
    return Opportunity(
        name=f"{account.name} - {fake.bs().capitalize()}"[:200],
        account=account,
        owner=rng.choice(owners),
        stage=rng.choice(stages),
        amount=Decimal(rng.randint(5, 500)) * 100,
        expected_close=(now + timedelta(days=rng.randint(-60, 180))).date(),
    )
