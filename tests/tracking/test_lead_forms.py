"""A lead form filled on a page with the tracking snippet identifies the browser: its earlier
anonymous page views join the contact's history (under double opt-in, once confirmed)."""

import json
import uuid

import pytest
from django.test import Client

from contacts.models import Contact
from crm.users.models import User
from leads.models import FormSubmission
from leads.services import lead_form_create, submission_confirm
from tests.tracking.conftest import SITE, batch, host, page_view, post
from tracking import drain
from tracking.models import TimelineEntry, Visitor

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(alpha_site, in_alpha):
    return User.objects.get(email="admin@alpha.test")


def browse_anonymously(tenant) -> uuid.UUID:
    visitor = uuid.uuid4()
    views = [page_view(f"{SITE}/", "Home"), page_view(f"{SITE}/pricing", "Pricing")]
    views[1]["ts"] += 1
    assert post(host(tenant), batch(visitor, views, session="visit-1")).status == 202
    drain.drain()
    return visitor


def fill(tenant, form, payload):
    client = Client(HTTP_HOST=host(tenant), REMOTE_ADDR="10.9.9.9")
    return client.post(
        f"/f/{form.key}/api/",
        json.dumps(payload),
        content_type="application/json",
        HTTP_ORIGIN=SITE,
    )


def test_a_form_filled_by_a_tracked_visitor_brings_the_earlier_page_views(alpha_site, admin):
    form = lead_form_create(actor=admin, name="Demo request", fallback_owner=admin)
    visitor = browse_anonymously(alpha_site)

    answer = fill(alpha_site, form, {"email": "ann@example.test", "crm_visitor": str(visitor)})

    assert answer.status_code == 200, answer.content
    contact = Contact.objects.get(email="ann@example.test")
    assert Visitor.objects.get(pk=visitor).contact == contact
    (visit,) = TimelineEntry.objects.filter(contact=contact, kind="page_view")
    assert visit.count == 2 and "Pricing" in visit.detail
    assert TimelineEntry.objects.filter(contact=contact, kind="form").exists()


def test_typing_an_existing_customers_address_does_not_make_the_browser_theirs(alpha_site, admin):
    form = lead_form_create(actor=admin, name="Demo request", fallback_owner=admin)
    customer = Contact.objects.create(first_name="Ceo", email="ceo@customer.test")
    visitor = browse_anonymously(alpha_site)

    answer = fill(alpha_site, form, {"email": "CEO@customer.test", "crm_visitor": str(visitor)})

    assert answer.status_code == 200, answer.content
    assert Visitor.objects.get(pk=visitor).contact is None
    assert not TimelineEntry.objects.filter(contact=customer, kind="page_view").exists()
    # The response itself is still the customer's.
    assert TimelineEntry.objects.filter(contact=customer, kind="form").exists()


def test_a_visitor_id_that_is_not_one_is_ignored(alpha_site, admin):
    form = lead_form_create(actor=admin, name="Demo request", fallback_owner=admin)

    answer = fill(alpha_site, form, {"email": "ann@example.test", "crm_visitor": "me; DROP"})

    assert answer.status_code == 200
    assert "crm_visitor" not in FormSubmission.objects.get().data
    assert not Visitor.objects.exists()


def test_under_double_opt_in_the_browser_is_identified_once_confirmed(alpha_site, admin, mailbox):
    form = lead_form_create(
        actor=admin, name="Newsletter", fallback_owner=admin, double_opt_in=True
    )
    visitor = browse_anonymously(alpha_site)

    fill(alpha_site, form, {"email": "ann@example.test", "crm_visitor": str(visitor)})

    assert Visitor.objects.get(pk=visitor).contact is None
    submission_confirm(submission=FormSubmission.objects.get())
    contact = Contact.objects.get(email="ann@example.test")
    assert Visitor.objects.get(pk=visitor).contact == contact
    assert TimelineEntry.objects.get(contact=contact, kind="page_view").count == 2
