"""On PostgreSQL, the database also refuses a phone number that is not a mainland mobile or a
landline with its area code (the form `normalise_phone` stores), for the senior's phone and the
emergency contact's. SQLite relies on the service, having no regular expressions of its own."""

from django.db import migrations

PATTERN = "^(1[3-9][0-9]{9}|0[0-9]{2,3}-[0-9]{7,8})?$"
COLUMNS = ("phone", "emergency_contact_phone")


def add(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for column in COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE eligibility_senior ADD CONSTRAINT senior_{column}_format "
                f"CHECK ({column} ~ '{PATTERN}')",
                params=None,
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for column in COLUMNS:
            schema_editor.execute(
                f"ALTER TABLE eligibility_senior DROP CONSTRAINT IF EXISTS senior_{column}_format", params=None
            )


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0004_senior_permissions")]
    operations = [migrations.RunPython(add, drop)]
