"""On PostgreSQL, the redemption ledger is append-only in the database itself (DESIGN.md §6.2).

Redemptions and voids can be inserted, never updated or deleted, whatever code or console
touches them. (TRUNCATE, used only by test teardown, is not a row operation and still works.)
SQLite keeps the rule in `Redemption.save`; it is the embedded demo database.
"""

from django.db import migrations

FORBID = """
CREATE OR REPLACE FUNCTION vouchers_ledger_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the redemption ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER vouchers_redemption_append_only BEFORE UPDATE OR DELETE ON vouchers_redemption
    FOR EACH ROW EXECUTE FUNCTION vouchers_ledger_is_append_only();
CREATE TRIGGER vouchers_redemptionvoid_append_only BEFORE UPDATE OR DELETE ON vouchers_redemptionvoid
    FOR EACH ROW EXECUTE FUNCTION vouchers_ledger_is_append_only();
"""
ALLOW = """
DROP TRIGGER IF EXISTS vouchers_redemption_append_only ON vouchers_redemption;
DROP TRIGGER IF EXISTS vouchers_redemptionvoid_append_only ON vouchers_redemptionvoid;
DROP FUNCTION IF EXISTS vouchers_ledger_is_append_only();
"""


def forbid(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORBID, params=None)


def allow(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ALLOW, params=None)


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0001_initial")]
    operations = [migrations.RunPython(forbid, allow)]
