import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context

from contacts.models import Account, Contact
from crm.users.models import Role, User
from opportunities.models import Opportunity

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_realistic_records_and_a_user_per_role(alpha, capsys):
    call_command("seed_demo", "alpha", contacts=100)

    assert "Seeded 20 accounts, 100 contacts and 30 opportunities" in capsys.readouterr().out
    with schema_context(alpha.schema_name):
        assert Contact.objects.count() == 100
        assert Account.objects.count() == 20
        assert Opportunity.objects.count() == 30
        assert set(User.objects.values_list("role", flat=True)) == set(Role.values)
        partner = User.objects.get(role=Role.PARTNER)
        assert Account.objects.filter(shared_with=partner.partner_organization).exists()
        assert Contact.objects.exclude(email="").count() == 100


def test_seed_demo_refuses_an_unknown_tenant():
    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("seed_demo", "nowhere")
