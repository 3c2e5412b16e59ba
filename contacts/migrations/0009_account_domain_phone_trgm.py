import django.contrib.postgres.indexes
import django.db.models.functions.text
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0008_contact_api_sync_indexes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="account",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("domain"), name="gin_trgm_ops"
                ),
                name="account_domain_trgm",
            ),
        ),
        migrations.AddIndex(
            model_name="account",
            index=django.contrib.postgres.indexes.GinIndex(
                django.contrib.postgres.indexes.OpClass(
                    django.db.models.functions.text.Upper("phone"), name="gin_trgm_ops"
                ),
                name="account_phone_trgm",
            ),
        ),
    ]
