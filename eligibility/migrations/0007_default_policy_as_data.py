"""The rules become data: each existing rule gets its condition (from the default policy's
definitions, by code), the care-visit classes become rules of each policy, a rule or
determination naming another policy's tier is repaired, overlapping windows of published
versions are closed as the old "latest start wins" rule read them, and a database without a
policy gets the default one (DESIGN.md §4.1, §4.2, §4.4)."""

import datetime as dt

from django.db import migrations

from eligibility import default_policy as default

# A rule whose code the old registry did not know never matched; it still never matches.
NEVER = {"not": {"fact": "age", "op": ">=", "value": 0}}


def forward(apps, schema_editor):
    Policy = apps.get_model("eligibility", "Policy")
    Tier = apps.get_model("eligibility", "Tier")
    PolicyRule = apps.get_model("eligibility", "PolicyRule")
    if not Policy.objects.exists():
        default.create_default_policy(Policy, Tier, PolicyRule)
        return
    for policy in Policy.objects.all():
        policy.population = default.POPULATION
        if policy.code == default.CODE and not policy.name_en:
            policy.name_en = default.NAME_EN
        policy.save(update_fields=["population", "name_en"])
        for rule in PolicyRule.objects.filter(policy=policy):
            known = default.RULES.get(rule.code)
            if known:
                rule.label, rule.label_en, _grants, rule.condition = known
            else:
                rule.label = rule.label or rule.code
                rule.condition = NEVER
            rule.save(update_fields=["label", "label_en", "condition"])
        have = set(PolicyRule.objects.filter(policy=policy).values_list("code", flat=True))
        PolicyRule.objects.bulk_create(
            PolicyRule(
                policy=policy, code=code, label=label, label_en=label_en, care_visit_class=grants, condition=condition
            )
            for code, label, label_en, grants, condition in default.CARE_RULES
            if code not in have
        )
    _rules_and_determinations_name_tiers_of_their_policy(Policy, Tier, PolicyRule, apps)
    # One published version per date: each ends the day before the next one starts. Versions
    # that started on the same day (the old rule let the highest version win from that day) take
    # one day each, in version order, so every one of them keeps a window of its own and stays
    # published: past determinations and vouchers name their tiers.
    published = list(Policy.objects.order_by("effective_from", "version"))
    for earlier, later in zip(published, published[1:]):
        if later.effective_from <= earlier.effective_from:
            later.effective_from = earlier.effective_from + dt.timedelta(days=1)
            later.save(update_fields=["effective_from"])
    for earlier, later in zip(published, published[1:]):
        if later.effective_from <= (earlier.effective_until or dt.date.max):
            earlier.effective_until = later.effective_from - dt.timedelta(days=1)
            earlier.status = "retired"
            earlier.save(update_fields=["effective_until", "status"])


def _rules_and_determinations_name_tiers_of_their_policy(Policy, Tier, PolicyRule, apps):
    """The old admin let a rule grant another policy's tier. Such a rule now grants its own
    policy's tier of the same code, and a determination made through one names the tier of the
    same code in its own policy (or, where its policy has none, the policy of its tier), so that
    the composite foreign keys of 0008 hold. A rule whose tier code its policy lacks stops the
    migration with the rules to repair (in the admin, before migrating again)."""
    from django.db.models import F

    Determination = apps.get_model("eligibility", "Determination")
    unrepairable = []
    for rule in PolicyRule.objects.exclude(tier__isnull=True).exclude(tier__policy_id=F("policy_id")):
        own = Tier.objects.filter(policy_id=rule.policy_id, code=rule.tier.code).first()
        if own is None:
            unrepairable.append(f"policy {rule.policy_id} rule {rule.code} (tier {rule.tier.code})")
            continue
        rule.tier = own
        rule.save(update_fields=["tier"])
    if unrepairable:
        raise RuntimeError(
            "These rules grant a tier of another policy, and their own policy has no tier of that code: "
            + "; ".join(unrepairable)
        )
    pairs = (
        Determination.objects.exclude(tier__isnull=True)
        .exclude(tier__policy_id=F("policy_id"))
        .values_list("policy_id", "tier_id", "tier__code", "tier__policy_id")
        .distinct()
    )
    for policy_id, tier_id, code, tier_policy_id in list(pairs):
        own = Tier.objects.filter(policy_id=policy_id, code=code).first()
        rows = Determination.objects.filter(policy_id=policy_id, tier_id=tier_id)
        if own is not None:
            rows.update(tier_id=own.pk)
        else:
            rows.update(policy_id=tier_policy_id)


def backward(apps, schema_editor):
    """Back to rules by code: the care-visit rules and the class-only determinations go (the old
    schema has a tier on every rule and determination)."""
    apps.get_model("eligibility", "Determination").objects.filter(tier__isnull=True).delete()
    apps.get_model("eligibility", "PolicyRule").objects.filter(tier__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0006_policies_as_data")]
    operations = [migrations.RunPython(forward, backward)]
