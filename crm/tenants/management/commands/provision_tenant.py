import time

from django.core.exceptions import ValidationError
from django.core.management import BaseCommand, CommandError

from crm.tenants.selectors import tenant_url
from crm.tenants.services import tenant_provision


class Command(BaseCommand):
    help = "Create a tenant (its own schema) with its first admin user."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The workspace address: <slug>.<base domain>")
        parser.add_argument("--name", required=True, help="The company's name")
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", required=True)
        parser.add_argument("--admin-name", default="")

    def handle(self, *args, slug, name, admin_email, admin_password, admin_name, **options):
        started = time.monotonic()
        try:
            tenant = tenant_provision(
                slug=slug,
                name=name,
                admin_email=admin_email,
                admin_password=admin_password,
                admin_name=admin_name,
            )
        except ValidationError as exc:
            raise CommandError(f"Cannot create tenant {slug!r}: {' '.join(exc.messages)}") from exc
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Created tenant {tenant.slug!r} in {elapsed * 1000:.0f} ms: {tenant_url(tenant)}"
        )
