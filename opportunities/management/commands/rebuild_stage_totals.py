from django.core.management import BaseCommand, CommandError
from django_tenants.utils import schema_context

from crm.tenants.models import Tenant
from opportunities.services import stage_totals_rebuild


class Command(BaseCommand):
    help = (
        "Count a tenant's pipeline-board stage totals afresh from its deals (after a restore or "
        "anything else that went around the database triggers that keep them)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's workspace address (<slug>.<base domain>)")

    def handle(self, *args, slug, **options):
        tenant = Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        with schema_context(tenant.schema_name):
            rows = stage_totals_rebuild()
        self.stdout.write(f"{tenant.slug}: stage totals counted afresh ({rows} rows).")
