"""A contact's other e-mail addresses and phone numbers: typed one a line on the contact form,
each address checked, and shown on the contact's page as links."""

import pytest

from contacts import services
from contacts.models import Contact
from crm.users.models import Role
from crm.users.services import user_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
REQUIRED = {"customer_type": "prospect", "lifecycle_stage": "awareness"}


@pytest.fixture
def sales(in_alpha):
    return user_create(
        email="sales@alpha.test", password=PASSWORD, full_name="Sally Sales", role=Role.SALES
    )


@pytest.fixture
def sales_client(client, sales):
    client.post("/login/", {"username": sales.email, "password": PASSWORD}, **ALPHA)
    return client


def test_other_addresses_and_phones_are_saved_and_edited(sales_client, sales):
    sales_client.post(
        "/contacts/new/",
        {
            **REQUIRED,
            "first_name": "Peter",
            "email": "peter@initech.test",
            "other_emails": "Peter@Home.test\r\n\r\npete@gmail.test, peter@home.test",
            "other_phones": "+1 555 0100\n+1 555 0199",
        },
        **ALPHA,
    )
    contact = Contact.objects.get()
    assert contact.other_emails == ["peter@home.test", "pete@gmail.test"]
    assert contact.other_phones == ["+1 555 0100", "+1 555 0199"]

    form = sales_client.get(f"/contacts/{contact.pk}/edit/", **ALPHA).content.decode()
    assert "peter@home.test\npete@gmail.test</textarea>" in form
    sales_client.post(
        f"/contacts/{contact.pk}/edit/",
        {**REQUIRED, "first_name": "Peter", "other_emails": "pete@gmail.test", "owner": sales.pk},
        **ALPHA,
    )
    contact.refresh_from_db()
    assert (contact.other_emails, contact.other_phones) == (["pete@gmail.test"], [])


def test_an_invalid_address_is_a_field_error_and_nothing_is_saved(sales_client, sales):
    created = sales_client.post(
        "/contacts/new/",
        {**REQUIRED, "first_name": "Peter", "other_emails": "ok@home.test\nnot-an-address"},
        **ALPHA,
    )
    contact = services.contact_create(actor=sales, first_name="Milton", other_emails=["m@x.test"])
    edited = sales_client.post(
        f"/contacts/{contact.pk}/edit/",
        {**REQUIRED, "first_name": "Milton", "other_emails": "m@x.test, <b>@nope"},
        **ALPHA,
    )

    assert created.status_code == edited.status_code == 200
    assert created.context["form"].errors["other_emails"] == [
        "not-an-address: Enter a valid email address."
    ]
    assert "other_emails" in edited.context["form"].errors
    assert "&lt;b&gt;@nope: Enter a valid email address." in edited.content.decode()
    assert list(Contact.objects.values_list("first_name", "other_emails")) == [
        ("Milton", ["m@x.test"])
    ]


def test_the_contact_page_links_them_and_shows_html_in_them_as_text(sales_client, sales):
    contact = services.contact_create(
        actor=sales,
        first_name="Peter",
        other_emails=["pete@gmail.test"],
        other_phones=["+1 555 0199", "<b>555</b>"],
    )
    # An address that did not come through the form (an old import, say).
    Contact.objects.filter(pk=contact.pk).update(
        other_emails=["pete@gmail.test", "<script>x</script>@evil.test"]
    )

    html = sales_client.get(f"/contacts/{contact.pk}/", **ALPHA).content.decode()

    assert '<a href="mailto:pete@gmail.test">pete@gmail.test</a>' in html
    assert '<a href="tel:+1 555 0199">+1 555 0199</a>' in html
    assert "<script>x</script>" not in html and "<b>555</b>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;@evil.test" in html
    assert "&lt;b&gt;555&lt;/b&gt;" in html
