from django.core.exceptions import ValidationError
from django.core.management import BaseCommand, CommandError

from crm.tenants.models import Tenant
from integrations.ratelimit import api_rate_limit_set


class Command(BaseCommand):
    help = "Set how many API calls a minute each key (or user) of a tenant may make."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's workspace address (<slug>.<base domain>)")
        parser.add_argument("limit", type=int, help="Calls per minute per key")

    def handle(self, *args, slug, limit, **options):
        tenant = Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        try:
            api_rate_limit_set(tenant=tenant, limit=limit)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"{tenant.slug}: {limit} API calls a minute per key.")
