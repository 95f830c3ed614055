"""The roles again, with the permissions of the policies issue: activating a policy, running an
evaluation, and a worker's manual tier for a senior (config.roles)."""

from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_roles"),
        ("eligibility", "0008_published_policies_are_fixed"),
    ]

    operations = [migrations.RunPython(setup_roles, migrations.RunPython.noop)]
