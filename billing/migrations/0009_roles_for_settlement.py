"""The roles again (config.roles), with the permissions of adjustments and reconciliation checks."""

from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_closed_months_are_frozen")]

    operations = [migrations.RunPython(setup_roles, migrations.RunPython.noop)]
