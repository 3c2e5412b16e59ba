import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0005_import_merge_letters"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="contact",
            index=models.Index(
                django.db.models.functions.text.Upper("territory"),
                models.F("lifecycle_stage"),
                name="contact_territory_stage",
                include=("territory", "id"),
            ),
        ),
    ]
