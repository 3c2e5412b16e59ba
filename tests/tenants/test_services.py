import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection
from django_tenants.utils import schema_context, schema_exists

from contacts.models import Contact
from crm.tenants.models import Tenant
from crm.tenants.services import spares_fill, tenant_provision
from crm.users.models import Role, User
from tests.conftest import PASSWORD, unique_slug


def provision(slug, email=None):
    return tenant_provision(
        slug=slug,
        name="Some Co",
        admin_email=email or f"boss@{slug}.test",
        admin_password=PASSWORD,
        admin_name="Boss Person",
    )


@pytest.mark.django_db
def test_provision_creates_a_schema_with_its_admin_and_the_tables_of_every_app():
    tenant = provision("gamma")

    assert tenant.schema_name == "t_gamma"
    assert schema_exists("t_gamma")
    with schema_context("t_gamma"):
        admin = User.objects.get()
        assert (admin.email, admin.role, admin.full_name) == (
            "boss@gamma.test",
            Role.ADMIN,
            "Boss Person",
        )
        assert admin.check_password(PASSWORD)
        assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_provision_takes_a_spare_schema_when_one_is_waiting_and_clones_otherwise():
    spares_fill(target=1)
    spare = Tenant.objects.get(kind=Tenant.Kind.SPARE)

    renamed = provision("epsilon")
    cloned = provision("zeta")

    assert renamed.pk == spare.pk and renamed.kind == Tenant.Kind.LIVE
    assert not schema_exists(spare.schema_name)
    assert cloned.pk != spare.pk
    for tenant in (renamed, cloned):
        with schema_context(tenant.schema_name):
            assert User.objects.get().email == f"boss@{tenant.slug}.test"
            assert Contact.objects.count() == 0


@pytest.mark.django_db
def test_spare_schemas_are_never_reachable_by_host(client):
    spares_fill(target=1)
    spare = Tenant.objects.get(kind=Tenant.Kind.SPARE)

    assert client.get("/login/", HTTP_HOST=f"{spare.slug}.localhost").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("ab", "3 to 30"),
        ("a" * 31, "3 to 30"),
        ("Has_Upper", "lowercase"),
        ("9starts-with-digit", "lowercase"),
        ("ends-with-", "lowercase"),
        ("double--hyphen", "lowercase"),
        ("bad slug", "lowercase"),
        ("www", "reserved"),
        ("api", "reserved"),
        ("alpha", "taken"),
    ],
)
def test_provision_refuses_a_bad_slug_and_creates_no_schema(slug, reason):
    schemas_before = _schemas()

    with pytest.raises(ValidationError) as error:
        provision(slug)

    assert reason in " ".join(error.value.messages)
    assert _schemas() == schemas_before


@pytest.mark.django_db
def test_provision_refuses_an_email_that_already_owns_a_workspace():
    with pytest.raises(ValidationError, match="already owns a workspace"):
        provision("delta", email="ADMIN@alpha.test")
    assert not Tenant.objects.filter(slug="delta").exists()


def test_failed_provisioning_leaves_nothing_behind_and_can_be_retried(
    django_db_setup, django_db_blocker, monkeypatch
):
    """Committed for real (no test transaction around it), as in production."""
    slug = unique_slug("retry")

    def fail(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("crm.users.services.user_create", fail)
    with django_db_blocker.unblock():
        with pytest.raises(RuntimeError):
            provision(slug)
        assert not Tenant.objects.filter(slug=slug).exists()
        assert not schema_exists("t_" + slug.replace("-", "_"))

        monkeypatch.undo()
        tenant = provision(slug)
        try:
            with schema_context(tenant.schema_name):
                assert User.objects.filter(role=Role.ADMIN).count() == 1
        finally:
            connection.set_schema_to_public()
            tenant.delete(force_drop=True)


@pytest.mark.django_db
def test_the_public_schema_holds_no_tenant_tables():
    connection.set_schema_to_public()
    with pytest.raises(ProgrammingError, match="does not exist"):
        list(Contact.objects.all()[:1])


@pytest.mark.django_db
def test_provision_command_refuses_a_taken_slug_with_a_clear_message():
    with pytest.raises(CommandError, match="'alpha': This address is taken"):
        call_command(
            "provision_tenant", "alpha", name="X", admin_email="x@x.test", admin_password=PASSWORD
        )


def _schemas():
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]
