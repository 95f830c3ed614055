"""On PostgreSQL, the database also refuses an ID-card number that is not 17 digits and a check
character (DESIGN.md §7). The check digit itself is verified by the service (GB 11643, stdnum);
SQLite keeps the length check of 0001, having no regular expressions of its own."""

from django.db import migrations

ADD = (
    "ALTER TABLE eligibility_senior ADD CONSTRAINT senior_id_card_format "
    "CHECK (id_card_number ~ '^[1-9][0-9]{16}[0-9X]$')"
)
DROP = "ALTER TABLE eligibility_senior DROP CONSTRAINT IF EXISTS senior_id_card_format"


def add(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(ADD, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0001_initial")]
    operations = [migrations.RunPython(add, drop)]
