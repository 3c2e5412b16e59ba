from django.core.exceptions import ValidationError
from django.core.management import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from crm.tenants.models import Tenant
from crm.users.models import User
from integrations.keys import api_key_create


class Command(BaseCommand):
    help = "Make an API key that acts as a user of a tenant; prints only the key."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The tenant's workspace address (<slug>.<base domain>)")
        parser.add_argument("--user", required=True, help="The e-mail of the user the key acts as")
        parser.add_argument("--read-only", action="store_true", help="The key may only read")
        parser.add_argument("--name", default="", help="What the key is for (shown in lists)")

    def handle(self, *args, slug, user, read_only, name, **options):
        tenant = Tenant.objects.filter(slug=slug, kind=Tenant.Kind.LIVE).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}.")
        with tenant_context(tenant):
            member = User.objects.filter(email__iexact=user.strip()).first()
            if member is None:
                raise CommandError(f"No user {user!r} in tenant {slug!r}.")
            try:
                _key, key_text = api_key_create(
                    actor=None,
                    user=member,
                    name=name or "Made with create_api_key",
                    read_only=read_only,
                )
            except ValidationError as exc:
                raise CommandError(f"Cannot make the key: {' '.join(exc.messages)}") from exc
        # Only the key, so that scripts can capture it: `KEY=$(manage.py create_api_key ...)`.
        self.stdout.write(key_text)
