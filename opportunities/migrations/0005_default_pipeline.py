"""Every tenant starts with a sales pipeline (new tenants are cloned from the template schema,
which this gives one too); tenants edit its stages in the browser."""

from django.db import migrations

STAGES = (
    ("Qualification", 10, False, False),
    ("Needs analysis", 25, False, False),
    ("Proposal", 50, False, False),
    ("Negotiation", 75, False, False),
    ("Closed won", 100, True, False),
    ("Closed lost", 0, False, True),
)


def create_default_pipeline(apps, schema_editor):
    Pipeline = apps.get_model("opportunities", "Pipeline")
    Stage = apps.get_model("opportunities", "Stage")
    if Pipeline.objects.exists():
        return
    pipeline = Pipeline.objects.create(name="Sales")
    Stage.objects.bulk_create(
        Stage(pipeline=pipeline, name=name, position=i, probability=p, is_won=won, is_lost=lost)
        for i, (name, p, won, lost) in enumerate(STAGES)
    )


class Migration(migrations.Migration):
    dependencies = [("opportunities", "0004_list_indexes")]

    operations = [migrations.RunPython(create_default_pipeline, migrations.RunPython.noop)]
