from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django_tenants.utils import schema_context

from contacts import merging, services
from contacts.models import (
    Account,
    Activity,
    Appointment,
    Contact,
    MergeJournal,
    RecordKind,
    Task,
)
from crm.demo import pipeline_ensure
from crm.users.models import PartnerOrganization, Role, Team
from crm.users.services import user_create
from opportunities import services as opportunity_services
from opportunities.models import Opportunity
from tests.conftest import PASSWORD
from tracking.models import AuditEntry, TimelineEntry

pytestmark = pytest.mark.django_db

ALPHA = {"HTTP_HOST": "alpha.localhost"}
BETA = {"HTTP_HOST": "beta.localhost"}


def _user(role, team=None, name=None):
    return user_create(
        email=f"{name or role}@alpha.test",
        password=PASSWORD,
        full_name=(name or role).title() + " Person",
        role=role,
        team=team,
    )


@pytest.fixture
def north(in_alpha):
    return Team.objects.create(name="North")


@pytest.fixture
def sales(north):
    return _user(Role.SALES, north)


@pytest.fixture
def stranger(in_alpha):
    """A salesperson of another team: their records are out of `sales`' reach."""
    return _user(Role.SALES, Team.objects.create(name="South"), name="stranger")


@pytest.fixture
def initech(sales):
    return services.account_create(actor=sales, name="Initech", domain="initech.test")


def _contact(actor, first, last, email="", account=None, **extra):
    return services.contact_create(
        actor=actor, first_name=first, last_name=last, email=email, account=account, **extra
    )


def _history(actor, contact, label):
    """An activity, a task, an appointment and an opportunity on `contact`."""
    services.activity_log(actor=actor, contact=contact, kind="call", subject=f"Call {label}")
    services.task_create(actor=actor, contact=contact, title=f"Task {label}")
    start = timezone.now() + timedelta(days=2)
    appointment = services.appointment_create(
        actor=actor,
        title=f"Meeting {label}",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        contacts=[contact],
    )
    opportunity_services.opportunity_create(
        actor=actor,
        name=f"Deal {label}",
        account=contact.account,
        stage=pipeline_ensure().stages.order_by("position", "id").first(),
        primary_contact=contact,
        amount=Decimal("1000"),
    )
    return appointment


def _counts(*contacts):
    return {
        "timeline": TimelineEntry.objects.filter(contact__in=contacts).count(),
        "activities": Activity.objects.filter(contact__in=contacts).count(),
        "tasks": Task.objects.filter(contact__in=contacts).count(),
        "appointments": Appointment.objects.filter(contacts__in=contacts).distinct().count(),
        "opportunities": Opportunity.objects.filter(primary_contact__in=contacts).count(),
    }


def _values(record):
    """A record's stored values, as the journal keeps them (updated_at aside)."""
    values = merging._serialize([type(record).objects.get(pk=record.pk)])[0]
    values["fields"].pop("updated_at")
    for field in type(record)._meta.many_to_many:
        values["fields"][field.name].sort()
    return values


def _pairs(user, kind, **kwargs):
    page = merging.duplicate_pairs(user, kind, **kwargs)
    return {(p.first.pk, p.second.pk): p.reasons for p in page.pairs}, page


# --- the finder ----------------------------------------------------------------------------------


def test_finder_pairs_same_email_and_similar_names_at_one_account_and_nothing_else(sales, initech):
    peter = _contact(sales, "Peter", "Gibbons", "peter@initech.test", initech)
    same_email = _contact(sales, "P.", "G.", "PETER@Initech.test")
    typo = _contact(sales, "Peter", "Gibons", "", initech)
    elsewhere = _contact(sales, "Peter", "Gibbonz", "", None)
    other_address = _contact(sales, "Pete", "Old", "pete@home.test", other_emails=[])
    holder = _contact(sales, "Milton", "W", "milton@initech.test", other_emails=["pete@home.test"])
    _contact(sales, "Samir", "Nagheenanajar", "samir@initech.test", initech)

    pairs, page = _pairs(sales, RecordKind.CONTACT)

    assert pairs == {
        (peter.pk, same_email.pk): ["same e-mail"],
        (peter.pk, typo.pk): ["similar name at the same account"],
        (other_address.pk, holder.pk): ["e-mail among the other's addresses"],
    }
    assert elsewhere.pk not in {pk for pair in pairs for pk in pair}
    assert page.next_after is None


def test_finder_pages_through_pairs_without_repeating_or_losing_one(sales, initech):
    made = [_contact(sales, f"Person{i}", "X", f"same{i}@x.test") for i in range(3)]
    copies = [_contact(sales, f"Copy{i}", "Y", f"SAME{i}@x.test") for i in range(3)]

    first, page = _pairs(sales, RecordKind.CONTACT, want=2)
    second, page2 = _pairs(sales, RecordKind.CONTACT, want=2, after=page.next_after)

    expected = {(a.pk, b.pk) for a, b in zip(made, copies, strict=True)}
    assert len(first) == 2 and page.next_after is not None
    assert set(first) | set(second) == expected and not set(first) & set(second)
    assert page2.next_after is None


def test_finder_shows_only_pairs_within_the_users_reach(sales, stranger, initech):
    mine = _contact(sales, "Peter", "Gibbons", "peter@initech.test", initech)
    theirs = _contact(stranger, "Peter", "Gibbons", "peter@initech.test", initech)
    admin = _user(Role.ADMIN, name="boss")

    assert _pairs(sales, RecordKind.CONTACT)[0] == {}
    assert _pairs(stranger, RecordKind.CONTACT)[0] == {}
    assert set(_pairs(admin, RecordKind.CONTACT)[0]) == {(mine.pk, theirs.pk)}


def test_finder_pairs_accounts_by_domain_or_similar_name(sales, initech):
    same_domain = services.account_create(
        actor=sales, name="Totally Different", domain="INITECH.test"
    )
    similar = services.account_create(actor=sales, name="Initech.", domain="")
    services.account_create(actor=sales, name="Globex", domain="globex.test")

    pairs, _ = _pairs(sales, RecordKind.ACCOUNT)

    assert pairs == {
        (initech.pk, same_domain.pk): ["same domain"],
        (initech.pk, similar.pk): ["similar name"],
    }


# --- merging -------------------------------------------------------------------------------------


@pytest.fixture
def twins(sales, initech):
    """Peter twice, each with a history, sharing one appointment."""
    kept = _contact(sales, "Peter", "Gibbons", "peter@initech.test", initech, title="Engineer")
    merged = _contact(
        sales,
        "Peter",
        "Gibons",
        "pgibbons@home.test",
        initech,
        title="Senior engineer",
        other_emails=["peter.old@initech.test"],
        external_id="CRM-7",
    )
    _history(sales, kept, "kept")
    _history(sales, merged, "merged")
    start = timezone.now() + timedelta(days=5)
    services.appointment_create(
        actor=sales,
        title="Both of them",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        contacts=[kept, merged],
    )
    # As stored: their histories moved them on (a deal puts a contact in evaluation).
    kept.refresh_from_db()
    merged.refresh_from_db()
    return kept, merged


def test_merge_keeps_every_related_row_applies_the_choices_and_writes_the_journal(sales, twins):
    kept, merged = twins
    before = _counts(kept, merged)
    merged_activities = set(Activity.objects.filter(contact=merged).values_list("pk", flat=True))

    journal = merging.contact_merge(
        actor=sales,
        kept=kept,
        merged=merged,
        fields={"title": "merged", "external_id": "merged", "last_name": "kept"},
    )

    kept.refresh_from_db()
    assert not Contact.objects.filter(pk=merged.pk).exists()
    after = _counts(kept)
    # One more timeline entry: the merge itself. The shared appointment is one appointment.
    assert after == {**before, "timeline": before["timeline"] + 1}
    assert merged_activities <= set(
        Activity.objects.filter(contact=kept).values_list("pk", flat=True)
    )
    assert (kept.title, kept.external_id, kept.last_name) == ("Senior engineer", "CRM-7", "Gibbons")
    assert kept.email == "peter@initech.test"
    assert kept.other_emails == ["pgibbons@home.test", "peter.old@initech.test"]
    assert TimelineEntry.objects.filter(
        contact=kept, summary="Sales Person merged Peter Gibons into this record"
    ).exists()
    assert AuditEntry.objects.filter(object_id=kept.pk, action="merged").exists()
    assert journal.kept_id == kept.pk and journal.merged_id == merged.pk
    assert journal.snapshot["merged"]["fields"]["external_id"] == "CRM-7"
    assert journal.snapshot["moved"]["contacts.activity.contact"]
    assert journal.snapshot["dropped"], "the shared appointment's second link was dropped"


def test_undo_restores_both_records_and_their_rows_exactly(sales, twins):
    kept, merged = twins
    kept_values, merged_values = _values(kept), _values(merged)
    merged_full = merging._serialize([merged])[0]
    rows = {
        "activities": set(Activity.objects.filter(contact=merged).values_list("pk", flat=True)),
        "tasks": set(Task.objects.filter(contact=merged).values_list("pk", flat=True)),
        "timeline": set(TimelineEntry.objects.filter(contact=merged).values_list("pk", flat=True)),
        "appointments": set(merged.appointments.values_list("pk", flat=True)),
        "opportunities": set(merged.opportunities.values_list("pk", flat=True)),
    }
    kept_rows = set(Activity.objects.filter(contact=kept).values_list("pk", flat=True))
    journal = merging.contact_merge(
        actor=sales,
        kept=kept,
        merged=merged,
        fields={"title": "merged", "external_id": "merged", "email": "merged"},
    )

    merging.merge_undo(actor=sales, journal=journal)

    restored = Contact.objects.get(pk=merged.pk)
    assert merging._serialize([restored])[0] == merged_full
    assert _values(restored) == merged_values and _values(kept) == kept_values
    assert rows == {
        "activities": set(Activity.objects.filter(contact=restored).values_list("pk", flat=True)),
        "tasks": set(Task.objects.filter(contact=restored).values_list("pk", flat=True)),
        "timeline": set(
            TimelineEntry.objects.filter(contact=restored).values_list("pk", flat=True)
        ),
        "appointments": set(restored.appointments.values_list("pk", flat=True)),
        "opportunities": set(restored.opportunities.values_list("pk", flat=True)),
    }
    assert set(Activity.objects.filter(contact=kept).values_list("pk", flat=True)) == kept_rows
    journal.refresh_from_db()
    assert journal.undone_at is not None and journal.undone_by == sales

    with pytest.raises(merging.MergeRefused, match="already undone"):
        merging.merge_undo(actor=sales, journal=journal)
    assert Contact.objects.filter(pk__in=[kept.pk, merged.pk]).count() == 2


def test_undo_waits_for_a_later_merge_of_the_same_record(sales, twins, initech):
    kept, merged = twins
    third = _contact(sales, "Peter", "Gibbons", "peter@initech.test", initech)
    first = merging.contact_merge(actor=sales, kept=kept, merged=merged, fields={})
    later = merging.contact_merge(actor=sales, kept=kept, merged=third, fields={})

    with pytest.raises(merging.MergeRefused, match="undo that one first"):
        merging.merge_undo(actor=sales, journal=first)
    assert not Contact.objects.filter(pk=merged.pk).exists()

    merging.merge_undo(actor=sales, journal=later)
    merging.merge_undo(actor=sales, journal=first)
    assert Contact.objects.filter(pk__in=[kept.pk, merged.pk, third.pk]).count() == 3


def test_merge_refuses_itself_another_kind_unknown_fields_and_records_out_of_reach(
    sales, stranger, twins, initech
):
    kept, merged = twins
    theirs = _contact(stranger, "Peter", "Gibbons", "peter@initech.test")

    with pytest.raises(merging.MergeRefused, match="itself"):
        merging.contact_merge(actor=sales, kept=kept, merged=kept, fields={})
    with pytest.raises(merging.MergeRefused, match="Only two"):
        merging.contact_merge(actor=sales, kept=kept, merged=initech, fields={})
    with pytest.raises(merging.MergeRefused, match="Unknown choice"):
        merging.contact_merge(actor=sales, kept=kept, merged=merged, fields={"id": "merged"})
    with pytest.raises(merging.MergeRefused, match="no longer exists"):
        merging.contact_merge(actor=sales, kept=kept, merged=theirs, fields={})
    for role in (Role.MARKETING, Role.PARTNER):
        with pytest.raises(PermissionDenied):
            merging.contact_merge(
                actor=_user(role, name=f"{role}-x"), kept=kept, merged=merged, fields={}
            )
    assert Contact.objects.filter(pk__in=[kept.pk, merged.pk, theirs.pk]).count() == 3
    assert not MergeJournal.objects.exists()


def test_account_merge_moves_contacts_deals_subsidiaries_and_partners_and_undoes(sales, initech):
    reseller, agency = (PartnerOrganization.objects.create(name=n) for n in ("Resell", "Agency"))
    initech.shared_with.set([reseller])
    copy = services.account_create(actor=sales, name="Initech Inc", domain="initech.test")
    copy.shared_with.set([reseller, agency])
    subsidiary = services.account_create(actor=sales, name="Initech Labs", parent=copy)
    initech.parent = copy
    initech.save()
    milton = _contact(sales, "Milton", "W", "milton@initech.test", copy)
    _history(sales, milton, "copy")
    before = {
        "contacts": Contact.objects.filter(account__in=[initech, copy]).count(),
        "deals": Opportunity.objects.filter(account__in=[initech, copy]).count(),
        "timeline": TimelineEntry.objects.filter(account__in=[initech, copy]).count(),
    }
    copy_values, initech_values = _values(copy), _values(initech)

    journal = merging.account_merge(
        actor=sales, kept=initech, merged=copy, fields={"name": "merged"}
    )

    initech.refresh_from_db()
    assert initech.name == "Initech Inc" and initech.parent_id is None
    assert set(initech.shared_with.all()) == {reseller, agency}
    assert Account.objects.get(pk=subsidiary.pk).parent_id == initech.pk
    assert Contact.objects.filter(account=initech).count() == before["contacts"]
    assert Opportunity.objects.filter(account=initech).count() == before["deals"]
    assert TimelineEntry.objects.filter(account=initech).count() == before["timeline"] + 1

    merging.merge_undo(actor=sales, journal=journal)

    copy = Account.objects.get(pk=copy.pk)
    assert _values(copy) == copy_values and _values(initech) == initech_values
    assert set(copy.shared_with.all()) == {reseller, agency}
    assert set(initech.shared_with.all()) == {reseller}
    assert Account.objects.get(pk=subsidiary.pk).parent_id == copy.pk
    assert list(Contact.objects.filter(account=copy)) == [milton]


def test_rows_moved_by_a_merge_and_its_undo_count_as_changed_for_a_sync(sales, initech):
    copy = services.account_create(actor=sales, name="Initech Inc")
    milton = _contact(sales, "Milton", "W", "milton@initech.test", copy)
    deal = opportunity_services.opportunity_create(
        actor=sales, name="Staplers", account=copy, stage=pipeline_ensure().stages.first()
    )
    task = services.task_create(actor=sales, title="Call", account=copy)
    rows = (Contact.objects.filter(pk=milton.pk), Opportunity.objects.filter(pk=deal.pk))
    rows += (Task.objects.filter(pk=task.pk),)
    long_ago = timezone.now() - timedelta(days=30)
    for row in rows:
        row.update(updated_at=long_ago)
    since = timezone.now()

    journal = merging.account_merge(actor=sales, kept=initech, merged=copy, fields={})

    assert [row.get().updated_at >= since for row in rows] == [True, True, True]
    for row in rows:
        row.update(updated_at=long_ago)
    since = timezone.now()
    merging.merge_undo(actor=sales, journal=journal)
    assert [row.get().updated_at >= since for row in rows] == [True, True, True]


def test_an_appointment_whose_attendee_a_merge_moves_counts_as_changed(sales, initech):
    kept = _contact(sales, "Peter", "Gibbons", "peter@initech.test", initech)
    merged = _contact(sales, "Peter", "Gibons", "pg@home.test", initech)
    start = timezone.now() + timedelta(days=1)
    meeting = services.appointment_create(
        actor=sales,
        title="Demo",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        contacts=[merged],
    )
    Appointment.objects.filter(pk=meeting.pk).update(updated_at=start - timedelta(days=30))
    since = timezone.now()

    merging.contact_merge(actor=sales, kept=kept, merged=merged, fields={})

    meeting.refresh_from_db()
    assert list(meeting.contacts.all()) == [kept] and meeting.updated_at >= since


# --- pages ---------------------------------------------------------------------------------------


def _logged_in(client, user, host=ALPHA):
    client.post("/login/", {"username": user.email, "password": PASSWORD}, **host)
    return client


def test_duplicates_page_lists_pairs_with_why_and_shows_names_as_text(
    client, sales, initech, django_assert_max_num_queries
):
    a = _contact(sales, "<script>alert(1)</script>", "Gibbons", "peter@initech.test", initech)
    b = _contact(sales, "Peter", "Gibbons", "PETER@initech.test")
    _logged_in(client, sales)

    with django_assert_max_num_queries(12):
        page = client.get("/duplicates/contacts/", **ALPHA)

    html = page.content.decode()
    assert page.status_code == 200
    assert "same e-mail" in html and f"/duplicates/contacts/{a.pk}/{b.pk}/" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert client.get("/duplicates/contacts/?after=abc", **ALPHA).status_code == 200
    assert client.get("/duplicates/accounts/", **ALPHA).status_code == 200
    assert client.get("/duplicates/people/", **ALPHA).status_code == 404


def test_review_then_merge_then_undo_from_the_journal(client, sales, twins):
    kept, merged = twins
    _logged_in(client, sales)
    url = f"/duplicates/contacts/{kept.pk}/{merged.pk}/"

    review = client.get(url, **ALPHA)
    assert review.status_code == 200
    html = review.content.decode()
    assert 'name="title" value="merged"' in html and "Senior engineer" in html
    assert "1 activities (contact)" in html

    done = client.post(url, {"title": "merged", "last_name": "kept", "email": "kept"}, **ALPHA)
    assert done.status_code == 302 and done["Location"] == f"/contacts/{kept.pk}/"
    kept.refresh_from_db()
    assert kept.title == "Senior engineer" and not Contact.objects.filter(pk=merged.pk).exists()
    detail = client.get(done["Location"], **ALPHA).content.decode()
    assert "Peter Gibons was merged into this record" in detail and "Call merged" in detail

    journal = MergeJournal.objects.get()
    listing = client.get("/merges/", **ALPHA).content.decode()
    assert "Peter Gibons merged into Peter Gibbons" in listing
    assert f"/merges/{journal.pk}/undo/" in listing
    undone = client.post(f"/merges/{journal.pk}/undo/", **ALPHA, follow=True)
    assert "Both records are back" in undone.content.decode()
    assert Contact.objects.get(pk=merged.pk).title == "Senior engineer"
    again = client.post(f"/merges/{journal.pk}/undo/", **ALPHA, follow=True)
    assert again.status_code == 200 and "already undone" in again.content.decode()


def test_bad_merge_requests_explain_and_change_nothing(client, sales, stranger, twins):
    kept, merged = twins
    theirs = _contact(stranger, "Peter", "Gibbons", "peter@initech.test")
    _logged_in(client, sales)

    itself = client.post(f"/duplicates/contacts/{kept.pk}/{kept.pk}/", **ALPHA, follow=True)
    assert "cannot be merged with itself" in itself.content.decode()
    assert client.get(f"/duplicates/contacts/{kept.pk}/{theirs.pk}/", **ALPHA).status_code == 404
    assert client.post(f"/duplicates/contacts/{kept.pk}/{theirs.pk}/", **ALPHA).status_code == 404
    assert client.get(f"/duplicates/contacts/{kept.pk}/999999/", **ALPHA).status_code == 404
    invalid = client.post(f"/duplicates/contacts/{kept.pk}/{merged.pk}/", {"title": "x"}, **ALPHA)
    assert invalid.status_code == 200 and invalid.context["form"].errors["title"]
    assert Contact.objects.filter(pk__in=[kept.pk, merged.pk, theirs.pk]).count() == 3

    merging.contact_merge(actor=sales, kept=kept, merged=merged, fields={})
    stale = client.post(f"/duplicates/contacts/{kept.pk}/{merged.pk}/", **ALPHA, follow=True)
    assert stale.status_code == 200 and "already merged" in stale.content.decode()
    assert MergeJournal.objects.count() == 1


@pytest.mark.parametrize("role", [Role.MARKETING, Role.PARTNER])
def test_marketing_and_partners_cannot_merge(client, role, twins):
    kept, merged = twins
    user = _user(role, name=f"{role}-user")
    _logged_in(client, user)

    assert client.get("/duplicates/contacts/", **ALPHA).status_code == 403
    assert client.get("/merges/", **ALPHA).status_code == 403
    review = f"/duplicates/contacts/{kept.pk}/{merged.pk}/"
    assert client.post(review, {"title": "merged"}, **ALPHA).status_code == 403
    assert Contact.objects.filter(pk__in=[kept.pk, merged.pk]).count() == 2


def test_alphas_merges_are_out_of_reach_on_betas_host(client, sales, twins, alpha, beta):
    kept, merged = twins
    journal = merging.contact_merge(actor=sales, kept=kept, merged=merged, fields={})
    client.post("/login/", {"username": "admin@beta.test", "password": PASSWORD}, **BETA)

    listing = client.get("/merges/", **BETA)
    assert listing.status_code == 200 and "Peter" not in listing.content.decode()
    assert client.post(f"/merges/{journal.pk}/undo/", **BETA).status_code == 404
    review = client.get(f"/duplicates/contacts/{kept.pk}/{merged.pk}/", **BETA)
    assert review.status_code == 404
    assert "Peter" not in client.get("/duplicates/contacts/", **BETA).content.decode()
    with schema_context(alpha.schema_name):
        journal.refresh_from_db()
        assert journal.undone_at is None
