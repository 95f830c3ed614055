"""Issuance at the scale of a city (bench/issue.py): the voucher table keeps the indexes it needs
and checks its references once per statement instead of once per row.

Dropped: the single-column indexes on senior (the (senior, month) unique index serves it),
determination, tier and tier code (twice: Django's slug field adds a LIKE index), the index on
(month, status) for one on (status, month), and the per-row foreign keys to senior,
determination and tier: at two million rows their deferred checks, each locking the row it
finds, cost more than storing the vouchers.

In their place, on PostgreSQL:
- after each INSERT statement, one join of the new rows (a transition table) with the
  determinations and tiers refuses any voucher whose determination does not exist or is not
  that senior's with that tier, or whose tier code is not its tier's (a snapshot of the wrong
  tier);
- a voucher's senior, determination, tier and month never change (an UPDATE of them is refused);
- a determination that vouchers refer to is never deleted (after each DELETE statement, one
  join), which keeps the senior too: the determination's own foreign key to the senior stays.
  A published tier is never deleted (eligibility 0008). The delete check waits for an issuance
  in progress (the evaluations' advisory lock), so the two cannot pass each other.
SQLite gets the insert and update rules as row triggers; there Django's own PROTECT keeps a
determination that vouchers refer to (a delete trigger would also refuse the test runner's
flush, which empties tables one by one with DELETE).
"""

from decimal import Decimal

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

POSTGRES = [
    """
    CREATE FUNCTION vouchers_match_determinations() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        stray bigint;
    BEGIN
        -- An anti-join: a hash join for a whole month, index probes for a few rows.
        SELECT n.id INTO stray
        FROM new_vouchers n
        WHERE NOT EXISTS (
            SELECT 1 FROM eligibility_determination d JOIN eligibility_tier t ON t.id = d.tier_id
            WHERE d.id = n.determination_id AND d.senior_id = n.senior_id
              AND d.tier_id = n.tier_id AND t.code = n.tier_code)
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'voucher % does not match its determination and tier', stray
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER voucher_matches_determination AFTER INSERT ON vouchers_voucher
    REFERENCING NEW TABLE AS new_vouchers FOR EACH STATEMENT
    EXECUTE FUNCTION vouchers_match_determinations()
    """,
    """
    CREATE FUNCTION vouchers_identity_is_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (NEW.senior_id, NEW.determination_id, NEW.tier_id, NEW.tier_code, NEW.period)
           IS DISTINCT FROM (OLD.senior_id, OLD.determination_id, OLD.tier_id, OLD.tier_code, OLD.period) THEN
            RAISE EXCEPTION 'a voucher''s senior, determination, tier and month never change'
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER voucher_identity_is_fixed
    BEFORE UPDATE OF senior_id, determination_id, tier_id, tier_code, period ON vouchers_voucher
    FOR EACH ROW EXECUTE FUNCTION vouchers_identity_is_fixed()
    """,
    """
    CREATE FUNCTION vouchers_keep_their_determinations() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        kept bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(7300107);  -- eligibility.services.EVALUATION_LOCK
        SELECT g.id INTO kept FROM gone g JOIN vouchers_voucher v ON v.determination_id = g.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'determination % is referred to by vouchers', kept
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER determination_kept_for_vouchers AFTER DELETE ON eligibility_determination
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION vouchers_keep_their_determinations()
    """,
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS determination_kept_for_vouchers ON eligibility_determination",
    "DROP FUNCTION IF EXISTS vouchers_keep_their_determinations()",
    "DROP TRIGGER IF EXISTS voucher_identity_is_fixed ON vouchers_voucher",
    "DROP FUNCTION IF EXISTS vouchers_identity_is_fixed()",
    "DROP TRIGGER IF EXISTS voucher_matches_determination ON vouchers_voucher",
    "DROP FUNCTION IF EXISTS vouchers_match_determinations()",
]
SQLITE = [
    """
    CREATE TRIGGER voucher_matches_determination BEFORE INSERT ON vouchers_voucher
    WHEN NOT EXISTS (
        SELECT 1 FROM eligibility_determination d JOIN eligibility_tier t ON t.id = d.tier_id
        WHERE d.id = NEW.determination_id AND d.senior_id = NEW.senior_id
          AND d.tier_id = NEW.tier_id AND t.code = NEW.tier_code)
    BEGIN SELECT RAISE(ABORT, 'voucher does not match its determination and tier'); END
    """,
    """
    CREATE TRIGGER voucher_identity_is_fixed
    BEFORE UPDATE OF senior_id, determination_id, tier_id, tier_code, period ON vouchers_voucher
    WHEN NEW.senior_id IS NOT OLD.senior_id OR NEW.determination_id IS NOT OLD.determination_id
      OR NEW.tier_id IS NOT OLD.tier_id OR NEW.tier_code IS NOT OLD.tier_code OR NEW.period IS NOT OLD.period
    BEGIN SELECT RAISE(ABORT, 'a voucher''s senior, determination, tier and month never change'); END
    """,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS voucher_identity_is_fixed",
    "DROP TRIGGER IF EXISTS voucher_matches_determination",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement, params=None)

    return run


add_checks = _run({"postgresql": POSTGRES, "sqlite": SQLITE})
drop_checks = _run({"postgresql": POSTGRES_DROP, "sqlite": SQLITE_DROP})


class Migration(migrations.Migration):
    dependencies = [
        ("eligibility", "0009_region_contact"),
        ("vouchers", "0005_disputes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="IssuanceRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("period", models.DateField(verbose_name="month")),
                ("started_at", models.DateTimeField(verbose_name="started at")),
                ("finished_at", models.DateTimeField(verbose_name="finished at")),
                ("issued", models.PositiveIntegerField(verbose_name="vouchers issued")),
                ("expired", models.PositiveIntegerField(verbose_name="vouchers expired")),
                ("last_determination_id", models.BigIntegerField(default=0)),
                ("incremental", models.BooleanField(default=False, verbose_name="only new determinations")),
                ("job", models.CharField(blank=True, max_length=60, verbose_name="job")),
            ],
            options={
                "verbose_name": "issuance run",
                "verbose_name_plural": "issuance runs",
                "ordering": ["-id"],
            },
        ),
        migrations.RemoveIndex(
            model_name="voucher",
            name="vouchers_vo_period_a7e261_idx",
        ),
        migrations.AlterField(
            model_name="voucher",
            name="determination",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="vouchers",
                to="eligibility.determination",
            ),
        ),
        migrations.AlterField(
            model_name="voucher",
            name="senior",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="vouchers",
                to="eligibility.senior",
            ),
        ),
        migrations.AlterField(
            model_name="voucher",
            name="tier",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="vouchers",
                to="eligibility.tier",
            ),
        ),
        migrations.AlterField(
            model_name="voucher",
            name="tier_code",
            field=models.SlugField(db_index=False, max_length=30, verbose_name="tier"),
        ),
        migrations.AddIndex(
            model_name="voucher",
            index=models.Index(fields=["status", "period"], name="voucher_status_period"),
        ),
        migrations.AddField(
            model_name="issuancerun",
            name="run_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="run by",
            ),
        ),
        migrations.AddIndex(
            model_name="issuancerun",
            index=models.Index(fields=["period", "-last_determination_id"], name="issuance_run_period"),
        ),
        migrations.RemoveConstraint(
            model_name="voucher",
            name="voucher_balance_le_face_value",
        ),
        migrations.AddField(
            model_name="issuancerun",
            name="carried_over",
            field=models.PositiveIntegerField(
                default=0, verbose_name="vouchers given last month's unused balance"
            ),
        ),
        migrations.AddField(
            model_name="voucher",
            name="carried_over",
            field=models.DecimalField(
                db_default=Decimal("0.00"),
                decimal_places=2,
                default=Decimal("0.00"),
                max_digits=12,
                verbose_name="carried over",
            ),
        ),
        migrations.AddField(
            model_name="voucher",
            name="carried_over_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="carried over at"),
        ),
        migrations.AddConstraint(
            model_name="voucher",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "balance__lte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("face_value"), "+", models.F("carried_over")
                        ),
                    )
                ),
                name="voucher_balance_le_entitlement",
            ),
        ),
        migrations.AddConstraint(
            model_name="voucher",
            constraint=models.CheckConstraint(
                condition=models.Q(("carried_over__gte", 0)), name="voucher_carried_over_non_negative"
            ),
        ),
        migrations.RunPython(add_checks, drop_checks),
    ]
