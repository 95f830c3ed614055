"""The role groups and their permissions (config.roles), so `migrate` alone gives working roles.

Permissions are normally created after all migrations (post_migrate); they are created here
first so that the groups can be given them on a fresh database.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles as setup

    for app_config in apps.get_app_configs():
        app_config.models_module = True  # historical app configs: create_permissions skips them otherwise
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    setup(group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission"))


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
