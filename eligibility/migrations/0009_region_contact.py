"""A community's contact (社区居家养老联系人) for its seniors' cards and voucher pages. On
PostgreSQL the database also refuses a contact phone that is not a mobile or a landline with
its area code, as it does for the seniors' phones (0005)."""

from django.db import migrations, models

import eligibility.models

PATTERN = "^(1[3-9][0-9]{9}|0[0-9]{2,3}-[0-9]{7,8})?$"


def add_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE eligibility_region ADD CONSTRAINT region_contact_phone_format "
            f"CHECK (contact_phone ~ '{PATTERN}')",
            params=None,
        )


def drop_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE eligibility_region DROP CONSTRAINT IF EXISTS region_contact_phone_format", params=None
        )


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0008_published_policies_are_fixed")]

    operations = [
        migrations.AddField(
            model_name="region",
            name="contact_name",
            field=models.CharField(blank=True, max_length=50, verbose_name="contact person"),
        ),
        migrations.AddField(
            model_name="region",
            name="contact_phone",
            field=models.CharField(
                blank=True,
                help_text="A mobile number or an area code and number, e.g. 0571-87001234.",
                max_length=20,
                validators=[eligibility.models.validate_phone],
                verbose_name="contact phone",
            ),
        ),
        migrations.RunPython(add_check, drop_check),
    ]
