"""Contracts the database keeps apart, billing increments as data, and who suspended a provider.

- `ServiceItem.quantity_step`: the smallest billable quantity (> 0). Existing items keep what the
  scanner accepted for them: visits and meals whole, hours in hundredths (the bureau may set 0.5).
- `ProviderStatusChange`: each suspension and reinstatement, with its reason, who and when.
- On PostgreSQL the provider's hotline must be a mobile or an area code and number, as the
  seniors' phones (eligibility 0005); NOT VALID: rows written before are left as they are.
- Two active contracts of one provider may not cover the same service item in the same region in
  overlapping periods. A contract's items and its area live in two tables (and its period and
  status in a third), so no single-table exclusion constraint can say it: triggers on all three
  re-check the contract whose row changed. On PostgreSQL they first take a transaction lock per
  provider, so two concurrent writers cannot each miss the other's row; the refusal is SQLSTATE
  23P01 (an IntegrityError). A denormalised (provider, item, region, daterange) table with
  EXCLUDE USING gist would need btree_gist and triggers of its own to stay true when the ORM
  writes past the service, for no gain. SQLite gets the same triggers (it has one writer at a
  time); note that Django rebuilds a SQLite table on some later ALTERs, which drops its
  triggers: tests/providers/test_contracts.py would then fail on SQLite.
  The services refuse more (a region and one inside it, `contract_overlap`, naming the other
  contract); the database, the same region.
"""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, models

PHONE_PATTERN = "^(1[3-9][0-9]{9}|0[0-9]{2,3}-[0-9]{7,8})?$"
LOCK_NAMESPACE = 7302  # first key of pg_advisory_xact_lock(int, int): "a provider's contracts"

# The active contracts other than `{contract}` of its provider that share an item and a region
# with it in an overlapping period (both ends included).
_OVERLAP = """
    SELECT other.number FROM providers_contract AS this
    JOIN providers_contract AS other
      ON other.provider_id = this.provider_id AND other.id <> this.id AND other.status = 'active'
     AND other.starts_on <= this.ends_on AND this.starts_on <= other.ends_on
    JOIN providers_contractitem AS this_item ON this_item.contract_id = this.id
    JOIN providers_contractitem AS other_item
      ON other_item.contract_id = other.id AND other_item.service_item_id = this_item.service_item_id
    JOIN providers_contract_service_area AS this_area ON this_area.contract_id = this.id
    JOIN providers_contract_service_area AS other_area
      ON other_area.contract_id = other.id AND other_area.region_id = this_area.region_id
    WHERE this.id = {contract} AND this.status = 'active'
"""

PG_INSTALL = f"""
CREATE FUNCTION providers_refuse_contract_overlap(p_contract bigint) RETURNS void AS $$
DECLARE
    p_provider bigint;
    p_clash text;
BEGIN
    SELECT provider_id INTO p_provider FROM providers_contract WHERE id = p_contract;
    IF p_provider IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, (p_provider % 2147483647)::int);
    p_clash := ({_OVERLAP.format(contract="p_contract")} LIMIT 1);
    IF p_clash IS NOT NULL THEN
        RAISE EXCEPTION 'contract_overlap: contract % overlaps active contract % of the same provider for the same service item and region', p_contract, p_clash
            USING ERRCODE = 'exclusion_violation';
    END IF;
END
$$ LANGUAGE plpgsql;

CREATE FUNCTION providers_contract_overlap_trigger() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'providers_contract' THEN
        PERFORM providers_refuse_contract_overlap(NEW.id);
    ELSE
        PERFORM providers_refuse_contract_overlap(NEW.contract_id);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER contract_overlap AFTER UPDATE OF provider_id, starts_on, ends_on, status
    ON providers_contract FOR EACH ROW EXECUTE FUNCTION providers_contract_overlap_trigger();
CREATE TRIGGER contract_item_overlap AFTER INSERT OR UPDATE OF contract_id, service_item_id
    ON providers_contractitem FOR EACH ROW EXECUTE FUNCTION providers_contract_overlap_trigger();
CREATE TRIGGER contract_area_overlap AFTER INSERT OR UPDATE
    ON providers_contract_service_area FOR EACH ROW EXECUTE FUNCTION providers_contract_overlap_trigger();
"""

PG_REMOVE = """
DROP TRIGGER IF EXISTS contract_overlap ON providers_contract;
DROP TRIGGER IF EXISTS contract_item_overlap ON providers_contractitem;
DROP TRIGGER IF EXISTS contract_area_overlap ON providers_contract_service_area;
DROP FUNCTION IF EXISTS providers_contract_overlap_trigger();
DROP FUNCTION IF EXISTS providers_refuse_contract_overlap(bigint);
"""

_SQLITE_RAISE = "SELECT RAISE(ABORT, 'contract_overlap: an active contract of this provider already covers this service item and region in this period');"
# (trigger name, event, contract id of the changed row)
SQLITE_TRIGGERS = [
    ("contract_overlap_update", "UPDATE OF provider_id, starts_on, ends_on, status ON providers_contract", "NEW.id"),
    ("contract_item_overlap_insert", "INSERT ON providers_contractitem", "NEW.contract_id"),
    ("contract_item_overlap_update", "UPDATE OF contract_id, service_item_id ON providers_contractitem", "NEW.contract_id"),
    ("contract_area_overlap_insert", "INSERT ON providers_contract_service_area", "NEW.contract_id"),
    ("contract_area_overlap_update", "UPDATE ON providers_contract_service_area", "NEW.contract_id"),
]


def install(apps, schema_editor):
    ServiceItem = apps.get_model("providers", "ServiceItem")
    ServiceItem.objects.filter(unit="hour").update(quantity_step=Decimal("0.01"))
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE providers_provider ADD CONSTRAINT provider_contact_phone_format "
            f"CHECK (contact_phone ~ '{PHONE_PATTERN}') NOT VALID",
            params=None,
        )
        schema_editor.execute(PG_INSTALL, params=None)
    elif vendor == "sqlite":
        for name, event, contract in SQLITE_TRIGGERS:
            schema_editor.execute(
                f"CREATE TRIGGER {name} AFTER {event} "
                f"WHEN EXISTS ({_OVERLAP.format(contract=contract)}) BEGIN {_SQLITE_RAISE} END",
                params=None,
            )


def remove(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REMOVE, params=None)
        schema_editor.execute(
            "ALTER TABLE providers_provider DROP CONSTRAINT IF EXISTS provider_contact_phone_format", params=None
        )
    elif vendor == "sqlite":
        for name, _event, _contract in SQLITE_TRIGGERS:
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {name}", params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("providers", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="serviceitem",
            name="quantity_step",
            field=models.DecimalField(
                blank=True,
                decimal_places=2,
                default=Decimal("1"),
                help_text="The smallest quantity billed: 1 for whole visits or meals, 0.5 for half hours.",
                max_digits=4,
                verbose_name="billing increment",
            ),
            preserve_default=False,
        ),
        migrations.AddConstraint(
            model_name="serviceitem",
            constraint=models.CheckConstraint(
                condition=models.Q(("quantity_step__gt", 0)), name="service_item_step_positive"
            ),
        ),
        migrations.CreateModel(
            name="ProviderStatusChange",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("is_active", models.BooleanField(verbose_name="active after the change")),
                ("reason", models.CharField(max_length=200, verbose_name="reason")),
                ("changed_at", models.DateTimeField(auto_now_add=True, verbose_name="at")),
                (
                    "changed_by",
                    models.ForeignKey(
                        on_delete=models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="by",
                    ),
                ),
                (
                    "provider",
                    models.ForeignKey(
                        on_delete=models.deletion.PROTECT,
                        related_name="status_changes",
                        to="providers.provider",
                    ),
                ),
            ],
            options={
                "verbose_name": "provider suspension or reinstatement",
                "verbose_name_plural": "provider suspensions and reinstatements",
                "ordering": ["-changed_at", "-id"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("reason", ""), _negated=True), name="provider_status_change_reason"
                    )
                ],
            },
        ),
        migrations.RunPython(install, remove),
    ]
