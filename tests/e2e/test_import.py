import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in

pytestmark = pytest.mark.e2e

CSV = (
    "Vorname,Surname,E-mail,Company\n"
    "Péter,Gibbons,peter@initech.test,Initech\n"
    "Milton,Waddams,not-an-email,Initech\n"
    "Joanna,<b>Bold</b>,joanna@chotchkies.test,Chotchkie's\n"
)


def test_a_salesperson_imports_contacts_from_a_csv_file(
    page, live_app, committed_tenant, add_user, celery_worker
):
    tenant = committed_tenant("import")
    email = add_user(tenant, "sales")
    log_in(page, live_app, tenant.slug, email)

    # Upload from the contact list.
    page.goto(live_app.url_for(tenant.slug, "/contacts/"))
    page.get_by_test_id("import").click()
    upload = page.get_by_test_id("import-upload")
    expect(upload.get_by_label("Contacts")).to_be_checked()
    # Saved by Excel on Windows as plain "CSV": Windows-1252, which is not UTF-8.
    people = {"name": "people.csv", "mimeType": "text/csv", "buffer": CSV.encode("cp1252")}
    upload.get_by_label("CSV file").set_input_files(people)
    upload.get_by_role("button", name="Upload").click()
    expect(upload.locator(".field.has-error")).to_contain_text("not UTF-8")
    expect(upload.locator(".field.has-error")).to_contain_text("line 2")
    upload.get_by_label("CSV file").set_input_files(people)
    upload.get_by_label("Encoding").select_option("cp1252")
    upload.get_by_role("button", name="Upload").click()

    # Map the one column we could not guess, and look at the preview.
    expect(page.locator("h1")).to_have_text("Import people.csv")
    expect(page.get_by_role("alert")).to_contain_text("Choose the column that holds the first name")
    mapping = page.get_by_test_id("import-mapping")
    expect(mapping.get_by_label("Surname")).to_have_value("last_name")
    mapping.get_by_label("Vorname").select_option("first_name")
    mapping.get_by_role("button", name="Update preview").click()
    preview = page.get_by_test_id("import-preview")
    expect(preview.locator("tbody tr")).to_have_count(3)
    expect(preview.locator("tbody tr").nth(1)).to_contain_text("Refused")
    expect(preview.locator("td.has-error")).to_have_text("not-an-email")
    expect(preview).to_contain_text("<b>Bold</b>")

    # Check the whole file first: the worker runs the import and takes it back, and the
    # mapping page comes back with what the import would do.
    mapping.get_by_role("button", name="Check the whole file").click()
    check = page.get_by_test_id("import-check")
    expect(check.get_by_test_id("would-create")).to_have_text("2", timeout=20_000)
    expect(check.get_by_test_id("would-update")).to_have_text("0")
    expect(check.get_by_test_id("would-refuse")).to_have_text("1")
    expect(check).to_contain_text("Enter a valid email address.")

    # Import the good rows; the job page follows the worker and then shows the result.
    mapping.get_by_label("Import the good rows").check()
    mapping.get_by_role("button", name="Start import").click()
    expect(page.get_by_test_id("import-state")).to_have_text("Done", timeout=20_000)
    expect(page.get_by_test_id("created")).to_have_text("2")
    expect(page.get_by_test_id("updated")).to_have_text("0")
    errors = page.get_by_test_id("import-errors")
    expect(errors.locator("tbody tr")).to_have_count(1)
    expect(errors).to_contain_text("3")
    expect(errors).to_contain_text("Enter a valid email address.")
    expect(page.get_by_test_id("error-report")).to_be_visible()

    # The imported contacts are in the list, names shown as text.
    page.get_by_role("link", name="See the contacts").click()
    expect(page.get_by_role("link", name="Péter Gibbons")).to_be_visible()
    expect(page.get_by_role("link", name="Joanna <b>Bold</b>")).to_be_visible()
    expect(page.get_by_role("link", name="Milton Waddams")).to_have_count(0)
