"""Inserting thousands of rows with PostgreSQL's COPY.

A multi-row INSERT of a thousand contacts carries twenty thousand parameters, which the driver
spends most of its time binding; COPY streams the rows and is several times faster. The ids are
taken from the table's sequence first, so the rows go in with them and the caller's objects
know their primary keys afterwards, as with `bulk_create`.

Changes go the same way: COPY into a temporary table, then one UPDATE joined to it. Django's
`bulk_update` writes a CASE with a branch per row for each column, which PostgreSQL evaluates
for every row, so a thousand rows cost a million comparisons.
"""

from collections.abc import Callable

from django.db import connection, models
from django.db.models import Model
from django.db.models.expressions import DatabaseDefault, Value

# Columns whose values COPY takes as they are: for these, Django's preparation only re-checks a
# type that an object built from validated data has already (subclasses included: e-mail,
# positive and big integers, one-to-one keys).
_AS_IS = (
    models.CharField,
    models.TextField,
    models.BooleanField,
    models.IntegerField,
    models.ForeignKey,
)


def _insert_value(field, obj: Model):
    value = field.pre_save(obj, add=True)
    if isinstance(value, DatabaseDefault):
        # A field left to its database default: COPY has no DEFAULT, so write the default's
        # value (a constant; an expression default would need an INSERT).
        value = field.db_default
        if isinstance(value, Value):
            value = value.value
        elif hasattr(value, "resolve_expression"):
            raise ValueError(f"{field} has an expression as its database default.")
    return field.get_db_prep_save(value, connection)


def _copy_value(field) -> Callable[[Model], object]:
    """How to read `field`'s COPY value from an object: as it is for the plain columns above
    (unless left to the database default), else through the field's own preparation. Preparing
    every value was a third of a thousand-contact API upsert."""
    if not isinstance(field, _AS_IS):
        return lambda obj: _insert_value(field, obj)
    attname = field.attname

    def value(obj):
        found = getattr(obj, attname)
        return _insert_value(field, obj) if isinstance(found, DatabaseDefault) else found

    return value


def copy_insert(objs: list[Model]) -> None:
    """Insert unsaved instances of one model with COPY, in the current transaction and
    schema, filling in auto_now(_add) fields and primary keys as `save()` would.

    The instances' values must have their fields' types already, as validated data and
    `full_clean()` give them: text, number, boolean and key values go to COPY as they are."""
    if not objs:
        return
    meta = type(objs[0])._meta
    quote = connection.ops.quote_name
    fields = meta.concrete_fields
    for obj in objs:
        # As bulk_create does: a foreign key set to an object saved since takes its id now.
        obj._prepare_related_fields_for_save(operation_name="copy_insert")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, len(objs)],
        )
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            setattr(obj, meta.pk.attname, pk)
        columns = ", ".join(quote(field.column) for field in fields)
        # The driver's own cursor: Django's wrapper has no COPY.
        with cursor.cursor.copy(f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN") as copy:
            values = [_copy_value(field) for field in fields]
            for obj in objs:
                copy.write_row([value(obj) for value in values])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


def copy_update(objs: list[Model], fields: list[str]) -> None:
    """Write `fields` of saved instances of one model with COPY and one UPDATE, in the current
    transaction and schema, as `bulk_update(objs, fields)` would."""
    if not objs:
        return
    meta = type(objs[0])._meta
    quote = connection.ops.quote_name
    columns = [meta.pk] + [meta.get_field(name) for name in fields]
    names = ", ".join(quote(field.column) for field in columns)
    # Named for the table: accounts and contacts may both be updated in one transaction.
    scratch = quote(f"copy_update_{meta.db_table}")
    with connection.cursor() as cursor:
        # Typed like the table's columns, without its constraints; gone with the transaction.
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} ON COMMIT DROP AS "
            f"SELECT {names} FROM {quote(meta.db_table)} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {scratch} ({names}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row(
                    [
                        field.get_db_prep_save(getattr(obj, field.attname), connection)
                        for field in columns
                    ]
                )
        pk = quote(meta.pk.column)
        assignments = ", ".join(
            f"{quote(field.column)} = s.{quote(field.column)}" for field in columns[1:]
        )
        cursor.execute(
            f"UPDATE {quote(meta.db_table)} t SET {assignments} FROM {scratch} s "
            f"WHERE t.{pk} = s.{pk}"
        )
        cursor.execute(f"DROP TABLE {scratch}")
