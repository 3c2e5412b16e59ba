"""Double opt-in end to end: the real Celery worker e-mails the confirmation link through a real
SMTP server, and only the visitor's confirmation brings the submission into the CRM."""

import json
import re

from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context

from contacts.models import Contact, Task
from crm.tenants.models import Tenant
from crm.users.models import User
from leads.models import FormSubmission
from leads.public_views import CONFIRM_MESSAGE
from leads.services import lead_form_create
from leads.tasks import confirmation_send
from tests.conftest import body_of

EMAIL = "nina@example.test"


def test_a_double_opt_in_submission_waits_for_the_link_in_the_e_mail(
    committed_tenant, celery_worker, mailbox
):
    tenant = committed_tenant("optin")
    # A comma in the name: the sender's display name must be quoted, not break the address.
    Tenant.objects.filter(pk=tenant.pk).update(name="Acme, Inc.")
    tenant.refresh_from_db()
    with schema_context(tenant.schema_name):
        admin = User.objects.get()
        form = lead_form_create(
            actor=admin,
            name="Newsletter",
            contact_fields=["first_name"],
            double_opt_in=True,
            fallback_owner=admin,
        )
    connection.set_schema_to_public()
    visitor = Client(REMOTE_ADDR="198.51.100.7", HTTP_HOST=f"{tenant.slug}.localhost")

    answer = visitor.post(
        f"/f/{form.key}/api/",
        json.dumps({"email": EMAIL, "first_name": "Nina"}),
        content_type="application/json",
    )

    assert answer.json() == {
        "ok": True,
        "confirm": True,
        "message": CONFIRM_MESSAGE,
        "redirect": None,
    }
    message = mailbox.wait_for(EMAIL)
    assert message["Subject"] == "Please confirm your e-mail address for Acme, Inc."
    assert message["From"].startswith('"Acme, Inc." <')
    link = re.search(rf"http://{tenant.slug}\.localhost\S*/f/confirm/\S+/", body_of(message))
    path = "/" + link.group(0).split("/", 3)[3]
    with schema_context(tenant.schema_name):
        submission = FormSubmission.objects.get()
        assert submission.status == FormSubmission.Status.AWAITING_CONFIRMATION
        assert not Contact.objects.exists()
        # A redelivered task sends nothing twice.
        assert confirmation_send.delay(submission.pk).get(timeout=20) is False
    connection.set_schema_to_public()

    opened = visitor.get(path)
    assert opened.status_code == 200 and b"Confirm your e-mail address" in opened.content
    with schema_context(tenant.schema_name):
        assert not Contact.objects.exists()
    connection.set_schema_to_public()

    confirmed = visitor.post(path)
    again = visitor.post(path)

    assert confirmed.status_code == again.status_code == 200
    assert b"Your e-mail address is confirmed." in confirmed.content
    with schema_context(tenant.schema_name):
        contact = Contact.objects.get()
        assert (contact.first_name, contact.email, contact.owner) == ("Nina", EMAIL, admin)
        assert Task.objects.filter(contact=contact).count() == 1
        submission.refresh_from_db()
        assert submission.status == FormSubmission.Status.PROCESSED
        assert submission.confirmed_at is not None
    connection.set_schema_to_public()
    assert visitor.get(path[:-2] + "x/").status_code == 400
    on_alpha = Client(HTTP_HOST="alpha.localhost")
    assert on_alpha.get(path).status_code == 400
    assert len(mailbox.to(EMAIL)) == 1
