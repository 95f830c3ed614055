"""The names a statement was settled with: the provider's on the statement, the service item's on
each line. Existing statements take the names as they are now (their triggers paused for that one
update on PostgreSQL), and an approved statement's name is frozen with its figures from here on.
"""

import importlib

from django.db import migrations, models

FROZEN_OLD = "NEW.approved_at, NEW.approved_by_id, NEW.due_date)"
FROZEN_NEW = "NEW.approved_at, NEW.approved_by_id, NEW.due_date, NEW.provider_name)"


def _statement_function() -> str:
    """billing_statement_is_final() as migration 0008 created it."""
    sql = importlib.import_module("billing.migrations.0008_closed_months_are_frozen").POSTGRES
    start = sql.index("CREATE OR REPLACE FUNCTION billing_statement_is_final()")
    return sql[start : sql.index("CREATE TRIGGER billing_statement_is_final", start)]


def fill_names(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    tables = ("billing_statement", "billing_statementline")
    if postgres:
        for table in tables:
            schema_editor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    schema_editor.execute(
        "UPDATE billing_statement SET provider_name = "
        "(SELECT p.name FROM providers_provider p WHERE p.id = billing_statement.provider_id)"
    )
    schema_editor.execute(
        "UPDATE billing_statementline SET service_item_name = "
        "(SELECT i.name FROM providers_serviceitem i WHERE i.id = billing_statementline.service_item_id)"
    )
    if postgres:
        for table in tables:
            schema_editor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")


def freeze_names(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        function = _statement_function()
        assert function.count(FROZEN_OLD) == 1
        schema_editor.execute(
            function.replace(FROZEN_OLD, FROZEN_NEW).replace(
                "OLD.approved_at, OLD.approved_by_id, OLD.due_date)",
                "OLD.approved_at, OLD.approved_by_id, OLD.due_date, OLD.provider_name)",
            )
        )


def unfreeze_names(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_statement_function())


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0011_four_eyes_for_job_prepared_statements"),
    ]

    operations = [
        migrations.AddField(
            model_name="statement",
            name="provider_name",
            field=models.CharField(
                blank=True, default="", max_length=100, verbose_name="provider name (as settled)"
            ),
        ),
        migrations.AddField(
            model_name="statementline",
            name="service_item_name",
            field=models.CharField(
                blank=True, default="", max_length=50, verbose_name="service item (as settled)"
            ),
        ),
        migrations.RunPython(fill_names, migrations.RunPython.noop),
        migrations.RunPython(freeze_names, unfreeze_names),
    ]
