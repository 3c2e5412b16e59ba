"""crm.bulk_insert: the values COPY takes as they are are the ones Django would have prepared,
for the kinds of rows the app writes with it."""

from datetime import UTC, datetime

from contacts.models import Account, Contact, CustomerType, LifecycleStage
from crm.bulk_insert import _AS_IS, _copy_value, _insert_value
from tracking.models import AuditEntry, LifecycleChange, TimelineEntry

WHEN = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def rows():
    """Unsaved rows as the importer, the API's bulk upsert and the ledger build them."""
    account = Account(
        id=7,
        name="Initech",
        domain="initech.test",
        tags=["vip"],
        customer_type=CustomerType.CUSTOMER,
    )
    contact = Contact(
        id=8,
        first_name="Peter",
        last_name="Gibbons",
        email="peter@initech.test",
        other_emails=["pg@home.test"],
        account=account,
        owner_id=3,
        lifecycle_stage=LifecycleStage.EVALUATION,
        interests=["printers"],
        do_not_email=True,
        external_id="crm-8",
    )
    return [
        account,
        contact,
        AuditEntry(model="contacts.contact", object_id=8, action="created", changes={"a": [1, 2]}),
        TimelineEntry(
            contact=contact,
            account_id=7,
            kind=TimelineEntry.Kind.RECORD,
            occurred_at=WHEN,
            summary="Imported",
        ),
        LifecycleChange(
            contact=contact,
            from_stage="",
            to_stage=LifecycleStage.PURCHASE,
            at=WHEN,
            cause="API",
            actor_id=3,
        ),
    ]


def test_plain_columns_go_to_copy_as_django_would_prepare_them():
    checked = 0
    for row in rows():
        for field in type(row)._meta.concrete_fields:
            if not isinstance(field, _AS_IS):
                continue
            # What the field's own preparation gives (a database default resolved first).
            prepared = _insert_value(field, row)
            as_is = _copy_value(field)(row)
            assert as_is == prepared, (type(row).__name__, field.name)
            # An enum member is a str (or int) subclass, which COPY writes by its value.
            assert str(as_is) == str(prepared)
            checked += 1
    assert checked >= 25
