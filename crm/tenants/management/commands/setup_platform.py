import time

from django.core.management import BaseCommand, call_command
from django_tenants.utils import schema_context

from crm import demo
from crm.demo_logins import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERS
from crm.tenants.models import Tenant
from crm.tenants.services import spares_fill, template_ensure, tenant_provision


class Command(BaseCommand):
    help = (
        "Migrate the public and every tenant schema, keep the template tenant that new tenants "
        "are cloned from, and make sure the demo tenant exists with its users and data."
    )

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="Skip the demo tenant.")
        parser.add_argument("--demo-contacts", type=int, default=2000)

    def handle(self, *args, no_demo, demo_contacts, verbosity, **options):
        started = time.monotonic()
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        template_ensure(verbosity=0)
        # Migrates every tenant, the template included; a no-op when nothing changed.
        call_command("migrate_schemas", tenant=True, interactive=False, verbosity=0)
        spares_fill()
        if not no_demo:
            self._demo_ensure(demo_contacts)
        if verbosity:
            self.stdout.write(f"Platform ready in {time.monotonic() - started:.1f}s.")

    def _demo_ensure(self, contacts: int) -> None:
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            email, _, name = DEMO_USERS[0]
            tenant = tenant_provision(
                slug=DEMO_SLUG,
                name="Demo Company",
                admin_email=email,
                admin_password=DEMO_PASSWORD,
                admin_name=name,
            )
        with schema_context(tenant.schema_name):
            from contacts.models import Contact

            demo.demo_users_ensure()
            if not Contact.objects.exists():
                demo.demo_seed(contacts=contacts)
