"""A senior's "this service did not happen" (异议): one open dispute per redemption, a note of at
most 500 characters, and on PostgreSQL a callback phone of the seniors' phones' form (as
eligibility 0005 and 0009 check theirs)."""

import django.db.models.deletion
import django.db.models.functions.text
import django.db.models.lookups
import django.utils.timezone
from django.db import migrations, models

PHONE = "^(1[3-9][0-9]{9}|0[0-9]{2,3}-[0-9]{7,8})?$"  # eligibility.models.PHONE_PATTERN, or blank


def add_phone_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE vouchers_dispute ADD CONSTRAINT dispute_callback_phone_format "
            f"CHECK (callback_phone ~ '{PHONE}')",
            params=None,
        )


def drop_phone_check(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE vouchers_dispute DROP CONSTRAINT IF EXISTS dispute_callback_phone_format",
            params=None,
        )


class Migration(migrations.Migration):
    dependencies = [("vouchers", "0004_reissue_and_revoked_at")]

    operations = [
        migrations.CreateModel(
            name="Dispute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("note", models.CharField(blank=True, max_length=500, verbose_name="note")),
                (
                    "callback_phone",
                    models.CharField(blank=True, max_length=20, verbose_name="callback phone"),
                ),
                ("client_hash", models.CharField(max_length=64, verbose_name="client (hashed)")),
                (
                    "status",
                    models.CharField(
                        choices=[("open", "To be checked"), ("closed", "Checked")],
                        default="open",
                        max_length=10,
                        verbose_name="status",
                    ),
                ),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, verbose_name="filed at"),
                ),
                (
                    "redemption",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="disputes",
                        to="vouchers.redemption",
                        verbose_name="redemption",
                    ),
                ),
            ],
            options={
                "verbose_name": "dispute",
                "verbose_name_plural": "disputes",
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["client_hash", "created_at"], name="dispute_client_time"),
                    models.Index(fields=["status", "-created_at"], name="dispute_status_time"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("status", "open")),
                        fields=("redemption",),
                        name="dispute_one_open_per_redemption",
                    ),
                    models.CheckConstraint(
                        condition=django.db.models.lookups.LessThanOrEqual(
                            django.db.models.functions.text.Length("note"), 500
                        ),
                        name="dispute_note_length",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("status__in", ["open", "closed"])), name="dispute_status_valid"
                    ),
                ],
            },
        ),
        migrations.RunPython(add_phone_check, drop_phone_check),
    ]
