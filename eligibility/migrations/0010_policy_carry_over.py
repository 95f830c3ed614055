"""Carry-over of unused balance as a policy option (default off), fixed once a version is
published, like the rest of its terms (0008)."""

import importlib

from django.db import migrations, models

FIXED = "a published policy version cannot be changed; copy it to a new draft"

POSTGRES = f"""
CREATE FUNCTION eligibility_published_carry_over_is_fixed() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' AND NEW.carry_over_unused IS DISTINCT FROM OLD.carry_over_unused THEN
        RAISE EXCEPTION '{FIXED}: carry-over of policy % refused', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER eligibility_policy_carry_over_fixed BEFORE UPDATE OF carry_over_unused ON eligibility_policy
    FOR EACH ROW EXECUTE FUNCTION eligibility_published_carry_over_is_fixed();
"""
POSTGRES_UNDO = """
DROP TRIGGER IF EXISTS eligibility_policy_carry_over_fixed ON eligibility_policy;
DROP FUNCTION IF EXISTS eligibility_published_carry_over_is_fixed();
"""
SQLITE_CARRY_OVER = f"""
CREATE TRIGGER eligibility_policy_carry_over_fixed BEFORE UPDATE OF carry_over_unused ON eligibility_policy
WHEN OLD.status <> 'draft' AND NEW.carry_over_unused IS NOT OLD.carry_over_unused
BEGIN SELECT RAISE(ABORT, '{FIXED}'); END;
"""


def _earlier():
    return importlib.import_module("eligibility.migrations.0008_published_policies_are_fixed")


def sqlite_lift_0008(apps, schema_editor):
    """SQLite rebuilds the policy table to add a column, and refuses while 0008's triggers name
    it: they are dropped first and made again after (`forward`)."""
    if schema_editor.connection.vendor == "sqlite":
        for name in _earlier().SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES, params=None)
    elif vendor == "sqlite":
        for statement in [*_earlier().SQLITE, SQLITE_CARRY_OVER]:
            schema_editor.execute(statement, params=None)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(POSTGRES_UNDO, params=None)
    elif vendor == "sqlite":
        schema_editor.execute("DROP TRIGGER IF EXISTS eligibility_policy_carry_over_fixed", params=None)
        sqlite_lift_0008(apps, schema_editor)


def sqlite_restore_0008(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in _earlier().SQLITE:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0009_region_contact")]

    operations = [
        migrations.RunPython(sqlite_lift_0008, sqlite_restore_0008),
        migrations.AddField(
            model_name="policy",
            name="carry_over_unused",
            field=models.BooleanField(default=False, verbose_name="carry unused balance over to the next month"),
        ),
        migrations.RunPython(forward, backward),
    ]
