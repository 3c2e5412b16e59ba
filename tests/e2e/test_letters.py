import io

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect
from pypdf import PdfReader

from contacts import letters
from contacts import services as contact_services
from crm.users.models import User
from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def book(committed_tenant, add_user, django_db_blocker):
    """A tenant with a salesperson and their contact Peter Gibbons at Initech."""
    tenant = committed_tenant("letters")
    email = add_user(tenant, "sales")
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=email)
        account = contact_services.account_create(
            actor=sales, name="Initech", street="1 Initech Way", city="Austin"
        )
        contact = contact_services.contact_create(
            actor=sales, first_name="Peter", last_name="Gibbons", account=account
        )
    connection.set_schema_to_public()
    return tenant, email, contact


def test_a_salesperson_writes_a_letter_from_a_template_and_downloads_the_pdf(page, live_app, book):
    tenant, email, contact = book
    log_in(page, live_app, tenant.slug, email)

    # Create a template; a broken one is refused on the form first.
    page.goto(live_app.url_for(tenant.slug, "/letters/new/"))
    expect(page.get_by_test_id("merge-fields")).to_contain_text("contact.first_name")
    form = page.get_by_test_id("letter-template-form")
    form.locator("#id_name").fill("Welcome")
    form.locator("#id_subject").fill("Welcome, {{ contact.first_name }}")
    form.locator("#id_body").fill("Dear {{ contact.nickname }},")
    form.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error")).to_contain_text("Unknown merge field: contact.nickname")
    form.locator("#id_body").fill(
        "{{ contact.full_name }}\n{{ account.name }}\n\n"
        'Dear {{ contact.first_name }} ({{ contact.title | default("no title") }}),\n'
        "thank you.\n{{ sender.full_name }}"
    )
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("letter-templates")).to_contain_text("Welcome")

    # From the contact's page: choose the template and preview the letter.
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{contact.pk}/"))
    panel = page.get_by_test_id("write-letter")
    panel.locator("#id_template").select_option(label="Welcome")
    panel.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("letter-preview")).to_contain_text("Dear Peter (no title),")

    # Create the PDF: it downloads, and it holds the merged letter.
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Create PDF").click()
    download = download_info.value
    assert download.suggested_filename.startswith("letter-peter-gibbons-")
    assert download.suggested_filename.endswith(".pdf")
    with open(download.path(), "rb") as pdf:
        text = PdfReader(io.BytesIO(pdf.read())).pages[0].extract_text()
    assert "Dear Peter (no title)," in text

    # The letter is on the timeline and can be downloaded again from the letter panel.
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{contact.pk}/"))
    expect(page.get_by_test_id("timeline")).to_contain_text("Letter: Welcome, Peter")
    again = page.get_by_test_id("letters").get_by_role("link", name="Welcome, Peter")
    with page.expect_download() as second:
        again.click()
    assert second.value.suggested_filename == download.suggested_filename


def test_a_salesperson_writes_letters_to_a_filtered_list_and_prints_one_pdf(
    page, live_app, book, celery_worker, django_db_blocker
):
    tenant, email, peter = book
    with django_db_blocker.unblock(), schema_context(tenant.schema_name):
        sales = User.objects.get(email=email)
        peter.territory = "Texas"
        peter.save(update_fields=["territory"])
        for first, last, territory, no_mail in (
            ("Samir", "Nagheenanajar", "Texas", False),
            ("Milton", "Waddams", "Texas", True),
            ("Bob", "Porter", "Ohio", False),
        ):
            contact_services.contact_create(
                actor=sales,
                first_name=first,
                last_name=last,
                territory=territory,
                do_not_mail=no_mail,
            )
        letters.letter_template_create(
            actor=sales, name="Spring offer", subject="Offer", body="Dear {{ contact.first_name }},"
        )
    connection.set_schema_to_public()
    log_in(page, live_app, tenant.slug, email)

    # The contact list, filtered to Texas, offers letters to these contacts.
    page.goto(live_app.url_for(tenant.slug, "/contacts/?territory=Texas"))
    page.get_by_test_id("letters-to-these").click()
    expect(page.get_by_test_id("batch-size")).to_have_text(
        "3 contacts, of whom 1 asked not to receive mail and gets no letter."
    )
    form = page.get_by_test_id("letter-batch-form")
    form.get_by_label("Template").select_option(label="Spring offer")
    form.get_by_role("button", name="Write 2 letters").click()

    # The worker writes them while the page follows; then the one PDF downloads.
    expect(page.get_by_test_id("batch-state")).to_have_text("Done", timeout=20_000)
    expect(page.get_by_test_id("written")).to_have_text("2")
    expect(page.get_by_test_id("skipped")).to_have_text("1")
    with page.expect_download() as download_info:
        page.get_by_test_id("batch-pdf").click()
    download = download_info.value
    assert download.suggested_filename.startswith("letters-spring-offer-")
    with open(download.path(), "rb") as pdf:
        pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdf.read())).pages]
    assert pages == ["Dear Peter,", "Dear Samir,"]

    # Each letter is on its contact's timeline.
    page.goto(live_app.url_for(tenant.slug, f"/contacts/{peter.pk}/"))
    expect(page.get_by_test_id("timeline")).to_contain_text("Letter: Offer")
