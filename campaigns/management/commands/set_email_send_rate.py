from django.core.exceptions import ValidationError
from django.core.management import BaseCommand, CommandError

from campaigns.governor import email_send_rate_set
from crm.tenants.models import Tenant


class Command(BaseCommand):
    help = "Set how many campaign e-mails a second a tenant may send (the sending governor)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's workspace address (<slug>.<base domain>)")
        parser.add_argument("rate", type=int, help="Messages per second")

    def handle(self, *args, slug, rate, **options):
        tenant = Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        try:
            email_send_rate_set(tenant=tenant, rate=rate)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"{tenant.slug}: {rate} campaign e-mails a second.")
