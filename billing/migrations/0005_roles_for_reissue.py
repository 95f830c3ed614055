"""The roles again, with the permissions of reissuing a voucher (config.roles)."""

from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_roles_for_policies"),
        ("vouchers", "0004_reissue_and_revoked_at"),
    ]

    operations = [migrations.RunPython(setup_roles, migrations.RunPython.noop)]
