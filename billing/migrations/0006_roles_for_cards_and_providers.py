"""The roles again (config.roles), with the permissions of the providers' pages and of the
seniors' disputes."""

from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_roles_for_reissue"),
        ("eligibility", "0009_region_contact"),
        ("providers", "0002_contracts"),
        ("vouchers", "0005_disputes"),
    ]

    operations = [migrations.RunPython(setup_roles, migrations.RunPython.noop)]
