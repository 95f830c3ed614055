"""Upgrading an installed database to policies as data (migrations 0006–0008): the old default
policy with its rules by code, a second version that started the same day, a rule that granted
another version's tier and a determination made through it all come through, and the database
then holds the new rules."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("eligibility", "0005_phone_format"), ("billing", "0003_roles")]
AFTER = [("eligibility", "0008_published_policies_are_fixed"), ("billing", "0004_roles_for_policies")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_database(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_an_installed_database_upgrades_with_its_policies_and_determinations(old_database):
    apps = old_database
    Policy, Tier, PolicyRule = (
        apps.get_model("eligibility", name) for name in ("Policy", "Tier", "PolicyRule")
    )
    Region, Senior, Determination = (
        apps.get_model("eligibility", n) for n in ("Region", "Senior", "Determination")
    )
    Determination.objects.all().delete()
    PolicyRule.objects.all().delete()
    Tier.objects.all().delete()
    Policy.objects.all().delete()
    # Given the old default policy (rules by code), and a second version from the same day whose
    # rule grants the first version's tier (the old admin allowed it), with a determination by it
    start = dt.date(2025, 1, 1)
    v1 = Policy.objects.create(code="default", version=1, name="默认政策", effective_from=start)
    v2 = Policy.objects.create(code="default", version=2, name="默认政策", effective_from=start)
    tiers = {
        (policy.pk, code): Tier.objects.create(
            policy=policy,
            code=code,
            name=code,
            rank=rank,
            government_share_rate=rate,
            monthly_face_value=face,
        )
        for policy in (v1, v2)
        for code, rank, rate, face in (("subsidized", 1, 1, 300), ("paid", 3, 0, 0))
    }
    PolicyRule.objects.create(policy=v1, code="subsidized_three_no", tier=tiers[(v1.pk, "subsidized")])
    PolicyRule.objects.create(policy=v1, code="paid_resident", tier=tiers[(v1.pk, "paid")])
    PolicyRule.objects.create(policy=v2, code="paid_resident", tier=tiers[(v1.pk, "paid")])  # another's tier
    district = Region.objects.create(code="990", name="区", level="district", path="990")
    community = Region.objects.create(
        code="990001", name="社区", level="community", parent=district, path="990.990001"
    )
    senior = Senior.objects.create(
        id_card_number="11010519491231002X", name="张三", birth_date=dt.date(1949, 12, 31), sex="F",
        community=community, status_date=start,
    )  # fmt: skip
    Determination.objects.create(
        senior=senior, policy=v2, tier=tiers[(v1.pk, "paid")], matched_rules=["paid_resident"], as_of=start
    )

    # When the database is migrated
    apps = migrate(AFTER)
    Policy, PolicyRule, Determination = (
        apps.get_model("eligibility", name) for name in ("Policy", "PolicyRule", "Determination")
    )

    # Then both versions stay published, each with a window of its own, one day apart
    v1, v2 = Policy.objects.get(version=1), Policy.objects.get(version=2)
    assert (v1.status, v1.effective_from, v1.effective_until) == ("retired", start, start)
    assert (v2.status, v2.effective_from, v2.effective_until) == (
        "active",
        start + dt.timedelta(days=1),
        None,
    )
    # And every rule grants a tier of its own policy and has its condition; care rules were added
    for rule in PolicyRule.objects.select_related("tier"):
        assert rule.tier is None or rule.tier.policy_id == rule.policy_id, rule.code
        assert rule.condition and rule.label
    assert PolicyRule.objects.get(policy=v2, code="paid_resident").condition == {
        "fact": "age",
        "op": ">=",
        "value": 60,
    }
    assert PolicyRule.objects.filter(policy=v1, care_visit_class="A").count() == 4
    # And the determination names the tier of the same code in its own policy
    determination = Determination.objects.select_related("tier").get()
    assert (determination.tier.policy_id, determination.tier.code) == (v2.pk, "paid")
