from django.db import migrations


class Migration(migrations.Migration):
    """pg_trgm in the public schema, which every tenant's search path ends with, so each
    tenant's trigram indexes and similarity searches find its operators."""

    dependencies = [("tenants", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public",
            reverse_sql=migrations.RunSQL.noop,
        )
    ]
