"""The rules become data: each existing rule gets its condition (from the default policy's
definitions, by code), the care-visit classes become rules of each policy, overlapping windows
of published versions are closed as the old "latest start wins" rule read them, and a database
without a policy gets the default one (DESIGN.md §4.1, §4.2, §4.4)."""

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
    # One published version per date: each ends the day before the next one starts.
    published = list(Policy.objects.order_by("effective_from", "version"))
    drafts = set()
    for earlier, later in zip(published, published[1:]):
        if later.effective_from <= (earlier.effective_until or dt.date.max):
            if later.effective_from == earlier.effective_from:
                # The old rule never put it in force (the later version won from the first day).
                if earlier.code not in drafts:
                    earlier.status = "draft"
                    drafts.add(earlier.code)
                    earlier.save(update_fields=["status"])
                continue
            earlier.effective_until = later.effective_from - dt.timedelta(days=1)
            earlier.status = "retired"
            earlier.save(update_fields=["effective_until", "status"])


class Migration(migrations.Migration):
    dependencies = [("eligibility", "0006_policies_as_data")]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
