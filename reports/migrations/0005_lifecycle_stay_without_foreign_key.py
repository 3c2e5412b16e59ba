"""A contact's life-cycle stays keep the contact's id without a foreign key: deleting a contact
must not wait for the daily rebuild of the stays. The stays are derived data: they are emptied
here and rebuilt by the next refresh."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reports", "0004_audit_slip_index")]

    operations = [
        migrations.RunSQL(
            "TRUNCATE reports_lifecyclestay; "
            "DELETE FROM reports_rollupstate WHERE name = 'lifecycle'",
            migrations.RunSQL.noop,
        ),
        migrations.RemoveIndex(model_name="lifecyclestay", name="lifecycle_stay_contact"),
        migrations.RemoveField(model_name="lifecyclestay", name="contact"),
        migrations.AddField(
            model_name="lifecyclestay",
            name="contact_id",
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="lifecyclestay",
            index=models.Index(fields=["contact_id", "entered_at"], name="lifecycle_stay_contact"),
        ),
    ]
