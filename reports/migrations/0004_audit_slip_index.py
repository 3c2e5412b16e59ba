"""Pipeline movement reads which deals' expected close date was pushed later in a period, from the
audit trail (tracking.AuditEntry, millions of rows of every kind of change). This partial index
holds just those pushes, by time, with the deal's id, so the report reads nothing else. The
WHERE repeats the report's filter (reports.forecast._slipped_in) word for word: PostgreSQL uses a
partial index only when the query's conditions imply its predicate. The table is the tracking
app's; the index exists for this report, so it lives here."""

from django.db import migrations

INDEX = "reports_audit_close_pushed"


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0003_marketing_rollups"),
        ("tracking", "0006_merge_offer"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON tracking_auditentry (at) INCLUDE (object_id) "
            "WHERE model = 'opportunities.opportunity' AND action = 'updated' "
            "AND changes ? 'expected_close' "
            "AND (changes #>> '{expected_close,1}') > (changes #>> '{expected_close,0}')",
            f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
