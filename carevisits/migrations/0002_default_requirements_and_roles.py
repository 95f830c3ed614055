"""The visit requirements of the special-difficulty visiting programme (DESIGN.md §4.4) as data, the
database's refusal of two standing rules of a class in force on the same day (PostgreSQL), and
the roles again with this app's permissions."""

from django.db import migrations

POSTGRES = "\n".join(
    f"ALTER TABLE carevisits_visitrequirement ADD CONSTRAINT visit_requirement_one_standing_{c.lower()}_per_day "
    f"EXCLUDE USING gist (daterange(effective_from, effective_until, '[]') WITH &&) "
    f"WHERE (NOT temporary AND care_visit_class = '{c}');"
    for c in "ABC"
)
POSTGRES_UNDO = "\n".join(
    f"ALTER TABLE carevisits_visitrequirement DROP CONSTRAINT IF EXISTS visit_requirement_one_standing_{c.lower()}_per_day;"
    for c in "abc"
)


def load_defaults(apps, schema_editor):
    from carevisits.default_requirements import load

    load(apps.get_model("carevisits", "VisitRequirement"))


def constraints(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES)


def drop_constraints(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UNDO)


def setup_roles(apps, schema_editor):
    from config.roles import setup_roles_in_migration

    setup_roles_in_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("carevisits", "0001_initial"), ("billing", "0009_roles_for_settlement")]

    operations = [
        migrations.RunPython(constraints, drop_constraints),
        migrations.RunPython(load_defaults, migrations.RunPython.noop),
        migrations.RunPython(setup_roles, migrations.RunPython.noop),
    ]
