"""Submissions at the same moment, on committed data (each thread has its own connection)."""

import threading

from django.db import connection
from django_tenants.utils import schema_context

from contacts.models import Contact
from crm.users.models import User
from leads.models import FormSubmission
from leads.services import lead_form_create, submission_receive


def test_two_submissions_from_one_new_address_at_once_make_one_contact(
    committed_tenant, django_db_blocker
):
    tenant = committed_tenant("race")
    with django_db_blocker.unblock():
        with schema_context(tenant.schema_name):
            admin = User.objects.get()
            form = lead_form_create(actor=admin, name="Race", fallback_owner=admin)
        connection.set_schema_to_public()
        start = threading.Barrier(2)
        failures = []

        def submit(first_name):
            try:
                with schema_context(tenant.schema_name):
                    start.wait()
                    submission_receive(
                        form=form, data={"email": "same@example.test", "first_name": first_name}
                    )
            except Exception as error:  # reported by the assertion below, in the test's thread
                failures.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=submit, args=(name,)) for name in ("One", "Two")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        with schema_context(tenant.schema_name):
            assert Contact.objects.filter(email="same@example.test").count() == 1
            assert FormSubmission.objects.filter(contact__isnull=False).count() == 2
        connection.set_schema_to_public()
