"""The role groups and their permissions (config.roles), so `migrate` alone gives working roles.

Permissions are normally created after all migrations (post_migrate); they are created here
first so that the groups can be given them on a fresh database.
"""

from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("eligibility", "0005_phone_format"),
        ("providers", "0001_initial"),
        ("vouchers", "0003_shares_add_up_to_the_fen"),
        ("billing", "0002_shares_add_up_to_the_fen"),
    ]

    operations = [migrations.RunPython(setup_roles, migrations.RunPython.noop)]
