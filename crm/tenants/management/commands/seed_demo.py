import time

from django.core.management import BaseCommand, CommandError
from django_tenants.utils import schema_context

from crm.demo import demo_seed
from crm.tenants.models import Tenant


class Command(BaseCommand):
    help = "Add realistic demo accounts, contacts and opportunities (and demo users) to a tenant."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--contacts", type=int, default=2000)

    def handle(self, *args, slug, contacts, **options):
        tenant = Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}. Create it first with provision_tenant.")
        if contacts < 1:
            raise CommandError("--contacts must be at least 1.")
        started = time.monotonic()
        with schema_context(tenant.schema_name):
            counts = demo_seed(contacts=contacts)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Seeded {counts['accounts']} accounts, {counts['contacts']} contacts and "
            f"{counts['opportunities']} opportunities in {elapsed:.1f}s."
        )
