"""Policies as data: drafts and versions, a published version fixed by the database itself,
activation from a date, evaluation under a new version, attribution, manual tiers, simulation,
and the three commands (simulate_policy, activate_policy, evaluate_eligibility)."""

import copy
import datetime as dt
import io
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from config.months import SHANGHAI
from config.roles import BUREAU, setup_roles
from eligibility import tasks
from eligibility.errors import EligibilityError
from eligibility.management.commands.evaluate_eligibility import JOB as COMMAND_JOB
from eligibility.models import Determination, EvaluationRun, Policy, PolicyRule, Senior, Tier, TierOverride
from eligibility.selectors import (
    evaluation_progress_key,
    policy_in_force,
    simulate_policy,
)
from eligibility.services import (
    activate_policy,
    copy_policy,
    delete_draft,
    delete_rule,
    delete_tier,
    end_tier_override,
    ensure_default_policy,
    evaluate_eligibility,
    finish_evaluation,
    save_rule,
    save_tier,
    set_tier_override,
    start_evaluation,
    update_draft,
    update_senior,
)
from tests.eligibility.conftest import NEXT_MONTH, TODAY, born_aged, make_user
from tests.factories import SeniorFactory, make_community
from tests.vouchers.conftest import build_world
from vouchers.models import Redemption, Voucher
from vouchers.services import redeem
from vouchers.tokens import voucher_token


def postgres_only(reason: str):
    """Mark a test as PostgreSQL's, skipped on SQLite with `reason`."""

    def mark(test):
        return pytest.mark.postgres(
            pytest.mark.skipif(connection.vendor != "postgresql", reason=reason)(test)
        )

    return mark


SQLITE_DELETES = "SQLite's triggers cover inserts and updates only: its test flush deletes rows"
SQLITE_NO_EXCLUSION = "SQLite has no exclusion constraints: only PostgreSQL refuses overlapping dates"
SQLITE_NO_ROW_LOCKS = "SQLite serialises all writers: concurrent activations need PostgreSQL's row locks"
LOW_FEE_80 = "low_fee_80_empty_nest_no_assistance"
EMPTY_NEST = {"living_arrangement": "empty_nest", "children_in_city": False}


def refused(code: str):
    """pytest.raises for a domain refusal; check `.value.code` against `code` afterwards."""
    return pytest.raises(EligibilityError, match=code)


def lower_low_fee_age(draft: Policy, *, by, years: int = 75) -> PolicyRule:
    """In the draft, the 80+ empty-nest low-fee rule from `years` instead (as the bureau would)."""
    rule = draft.rules.get(code=LOW_FEE_80)
    condition = copy.deepcopy(rule.condition)
    assert condition["all"][0] == {"fact": "age", "op": ">=", "value": 80}
    condition["all"][0]["value"] = years
    return save_rule(
        policy=draft, by=by, rule=rule, condition=condition, label=f"{years}岁以上空巢且未享受民政救助"
    )


def terms_of(policy: Policy) -> tuple:
    """Everything a published version fixes: its row, its tiers and its rules."""
    row = Policy.objects.filter(pk=policy.pk).values(
        "code", "version", "name", "name_en", "status", "effective_from", "effective_until", "population"
    )[0]
    tiers = list(Tier.objects.filter(policy=policy).order_by("pk").values())
    rules = list(PolicyRule.objects.filter(policy=policy).order_by("pk").values())
    return row, tiers, rules


def tier_of(senior) -> str | None:
    determination = Determination.objects.select_related("tier").get(senior=senior, is_current=True)
    return determination.tier.code if determination.tier else None


# --- Drafts: copy and edit ------------------------------------------------------------------------


def test_a_copy_is_the_next_version_as_a_draft_with_every_tier_and_rule(default_policy, bureau):
    # When the bureau copies the policy in force
    draft = copy_policy(policy=default_policy, by=bureau)

    # Then it is version 2 of the same code, a draft with no dates, made from the original by them
    assert (draft.code, draft.version, draft.status) == ("default", 2, Policy.Status.DRAFT)
    assert (draft.based_on, draft.created_by, draft.effective_from, draft.effective_until) == (
        default_policy,
        bureau,
        None,
        None,
    )
    assert draft.population == default_policy.population

    # And it has its own copy of each tier's terms and of each rule, granting its own tiers
    def tiers(policy):
        return [
            (t.code, t.name, t.name_en, t.rank, t.government_share_rate, t.monthly_face_value)
            for t in policy.tiers.order_by("rank")
        ]

    def rules(policy):
        return [
            (r.code, r.label, r.label_en, r.tier.code if r.tier else None, r.care_visit_class, r.condition)
            for r in policy.rules.select_related("tier").order_by("code")
        ]

    assert tiers(draft) == tiers(default_policy) and len(tiers(draft)) == 3
    assert rules(draft) == rules(default_policy) and len(rules(draft)) == 17
    assert not set(draft.tiers.values_list("pk", flat=True)) & set(
        default_policy.tiers.values_list("pk", flat=True)
    )
    assert not draft.rules.exclude(tier__isnull=True).exclude(tier__policy=draft).exists()


def test_a_second_draft_of_a_code_is_refused(default_policy, bureau):
    # Given a draft of the default policy
    copy_policy(policy=default_policy, by=bureau)

    # When the bureau copies it again, under the same code
    with refused("draft_exists") as refusal:
        copy_policy(policy=default_policy, by=bureau)

    # Then it is refused, naming the code
    assert refusal.value.code == "draft_exists" and "default" in refusal.value.detail
    assert Policy.objects.filter(code="default", status=Policy.Status.DRAFT).count() == 1


def test_a_copy_under_a_new_code_is_its_first_version_and_the_database_keeps_one_draft_per_code(
    default_policy, bureau
):
    # Given a draft of the default policy
    copy_policy(policy=default_policy, by=bureau)

    # Then a copy under a new code is version 1 of that code
    other = copy_policy(policy=default_policy, by=bureau, code="city-2027", name="2027年政策")
    assert (other.code, other.version, other.name, other.status) == ("city-2027", 1, "2027年政策", "draft")
    # And the database itself refuses a second draft of a code
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(code="default", version=9, name="第二份草稿")
    assert Policy.objects.filter(code="default", status=Policy.Status.DRAFT).count() == 1


def test_a_copy_under_a_code_that_is_not_a_slug_is_refused(default_policy, bureau):
    with refused("invalid_input"):
        copy_policy(policy=default_policy, by=bureau, code="城市 政策/2027")
    assert not Policy.objects.filter(code="城市 政策/2027").exists()


def test_copying_needs_the_bureaus_permission(default_policy, worker):
    with refused("not_permitted"):
        copy_policy(policy=default_policy, by=worker)
    assert not Policy.objects.filter(status=Policy.Status.DRAFT).exists()


def test_a_draft_is_edited_and_the_version_in_force_does_not_change(default_policy, bureau):
    # Given a draft of the policy in force
    published = terms_of(default_policy)
    draft = copy_policy(policy=default_policy, by=bureau)

    # When the bureau renames it, covers 65+ only, raises the low-fee face value, lowers the
    # low-fee age to 75, adds a rule and deletes another
    update_draft(
        policy=draft, by=bureau, name="2027年政策", population={"fact": "age", "op": ">=", "value": 65}
    )
    low_fee = draft.tiers.get(code="low_fee")
    save_tier(policy=draft, by=bureau, tier=low_fee, monthly_face_value=Money("220.00", "CNY"))
    lower_low_fee_age(draft, by=bureau)
    save_rule(
        policy=draft,
        by=bureau,
        code="low_fee_dementia",
        label="失智",
        tier=low_fee,
        condition={"fact": "dementia", "op": "is", "value": True},
    )
    delete_rule(rule=draft.rules.get(code="low_fee_hardship"), by=bureau)

    # Then the draft holds the changes
    draft.refresh_from_db()
    assert (draft.name, draft.population) == ("2027年政策", {"fact": "age", "op": ">=", "value": 65})
    assert draft.tiers.get(code="low_fee").monthly_face_value == Money("220.00", "CNY")
    assert draft.rules.get(code=LOW_FEE_80).condition["all"][0]["value"] == 75
    assert set(draft.rules.values_list("code", flat=True)) == (
        set(default_policy.rules.values_list("code", flat=True)) - {"low_fee_hardship"} | {"low_fee_dementia"}
    )
    # And the version in force is exactly as it was
    assert terms_of(default_policy) == published


@pytest.mark.parametrize(
    ("edit", "code", "field", "detail"),
    [
        (
            lambda draft, by: save_rule(
                policy=draft,
                by=by,
                rule=draft.rules.get(code=LOW_FEE_80),
                condition={"all": [{"fact": "age", "op": ">=", "value": "75"}]},
            ),
            "invalid_condition",
            "condition",
            "all[0].value: ",
        ),
        (
            lambda draft, by: update_draft(policy=draft, by=by, population={"any": []}),
            "invalid_condition",
            "population",
            "condition: ",
        ),
        (
            lambda draft, by: save_rule(
                policy=draft,
                by=by,
                code="foreign",
                label="别的政策的档",
                tier=Policy.objects.exclude(pk=draft.pk).get().tiers.first(),
                condition={"fact": "three_no", "op": "is", "value": True},
            ),
            "invalid_input",
            "tier",
            "",
        ),
        (
            lambda draft, by: save_rule(
                policy=draft,
                by=by,
                code="both",
                label="两样",
                tier=draft.tiers.first(),
                care_visit_class="A",
                condition={"fact": "three_no", "op": "is", "value": True},
            ),
            "invalid_input",
            "care_visit_class",
            "",
        ),
        (
            lambda draft, by: save_rule(
                policy=draft,
                by=by,
                code="bad code",
                label="坏代码",
                care_visit_class="A",
                condition={"fact": "three_no", "op": "is", "value": True},
            ),
            "invalid_input",
            "code",
            "",
        ),
        (
            lambda draft, by: save_tier(
                policy=draft,
                by=by,
                tier=draft.tiers.get(code="low_fee"),
                government_share_rate=Decimal("1.5"),
            ),
            "invalid_input",
            None,
            "",
        ),
        (
            lambda draft, by: save_tier(policy=draft, by=by, tier=draft.tiers.get(code="low_fee"), rank=1),
            "invalid_input",
            None,
            "",
        ),
        (lambda draft, by: delete_tier(tier=draft.tiers.get(code="paid"), by=by), "tier_in_use", None, ""),
    ],
    ids=[
        "age as text",
        "empty population",
        "another policy's tier",
        "tier and class",
        "rule code not a slug",
        "share rate over 1",
        "rank taken",
        "tier still granted",
    ],
)
def test_an_edit_of_a_draft_is_validated(default_policy, bureau, edit, code, field, detail):
    # Given a draft
    draft = copy_policy(policy=default_policy, by=bureau)
    before = terms_of(draft)

    # When an edit is wrong
    with refused(code) as refusal:
        edit(draft, bureau)

    # Then it is refused with its code and where (the field, and inside a condition the path),
    # and the draft is as it was
    assert (refusal.value.code, refusal.value.field) == (code, field)
    assert detail in refusal.value.detail
    assert terms_of(draft) == before


@pytest.mark.parametrize(
    "edit",
    [
        lambda policy, by: save_tier(
            policy=policy, by=by, tier=policy.tiers.get(code="subsidized"), name="改"
        ),
        lambda policy, by: save_rule(
            policy=policy, by=by, rule=policy.rules.get(code=LOW_FEE_80), label="改"
        ),
        lambda policy, by: update_draft(policy=policy, by=by, name="改"),
        lambda policy, by: delete_rule(rule=policy.rules.get(code=LOW_FEE_80), by=by),
        lambda policy, by: delete_draft(policy=policy, by=by),
        lambda policy, by: activate_policy(policy=policy, effective_from=NEXT_MONTH, by=by, today=TODAY),
    ],
    ids=["save_tier", "save_rule", "update_draft", "delete_rule", "delete_draft", "activate_policy"],
)
def test_the_services_refuse_to_change_a_published_version(default_policy, bureau, edit):
    before = terms_of(default_policy)
    with refused("policy_published") as refusal:
        edit(default_policy, bureau)
    assert refusal.value.code == "policy_published"
    assert terms_of(default_policy) == before


def test_an_edit_of_a_draft_activated_meanwhile_is_refused_as_published(default_policy, bureau, now):
    # Given a draft open in one tab, and activated from another
    draft = copy_policy(policy=default_policy, by=bureau)
    stale = Policy.objects.get(pk=draft.pk)
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau)
    assert stale.is_draft

    # When the first tab saves a rule of it, then the service refuses it as published
    with refused("policy_published") as refusal:
        lower_low_fee_age(stale, by=bureau)
    assert refusal.value.code == "policy_published"
    assert draft.rules.get(code=LOW_FEE_80).condition["all"][0]["value"] == 80


def test_a_draft_can_be_deleted_with_its_tiers_and_rules(default_policy, bureau):
    draft = copy_policy(policy=default_policy, by=bureau)
    delete_draft(policy=draft, by=bureau)
    assert not Policy.objects.filter(pk=draft.pk).exists()
    assert not Tier.objects.filter(policy_id=draft.pk).exists()
    assert not PolicyRule.objects.filter(policy_id=draft.pk).exists()


# --- A published version is fixed in the database ---------------------------------------------


def _save(instance, **changes):
    for name, value in changes.items():
        setattr(instance, name, value)
    instance.save()


PUBLISHED_EDITS = {
    "tier face value by update()": lambda p: Tier.objects.filter(policy=p, code="subsidized").update(
        monthly_face_value=Decimal("320.00")
    ),
    "tier share rate by save()": lambda p: _save(
        p.tiers.get(code="low_fee"), government_share_rate=Decimal("0.8000")
    ),
    "tier rank by update()": lambda p: Tier.objects.filter(policy=p, code="paid").update(rank=7),
    "a new tier": lambda p: Tier.objects.create(
        policy=p,
        code="extra",
        name="额外",
        rank=9,
        government_share_rate=Decimal("0.5"),
        monthly_face_value=Money("50.00", "CNY"),
    ),
    "rule condition by update()": lambda p: PolicyRule.objects.filter(policy=p, code=LOW_FEE_80).update(
        condition={"fact": "age", "op": ">=", "value": 75}
    ),
    "rule tier by save()": lambda p: _save(
        p.rules.get(code="paid_resident"), tier=p.tiers.get(code="low_fee")
    ),
    "rule label by save()": lambda p: _save(p.rules.get(code="paid_resident"), label="改"),
    "a new rule": lambda p: PolicyRule.objects.create(
        policy=p,
        code="extra",
        label="额外",
        care_visit_class="C",
        condition={"fact": "dementia", "op": "is", "value": True},
    ),
    "policy name": lambda p: Policy.objects.filter(pk=p.pk).update(name="改名"),
    "policy English name": lambda p: _save(p, name_en="Renamed"),
    "policy start": lambda p: Policy.objects.filter(pk=p.pk).update(effective_from=dt.date(2024, 1, 1)),
    "policy population": lambda p: Policy.objects.filter(pk=p.pk).update(
        population={"fact": "age", "op": ">=", "value": 65}
    ),
    "policy code": lambda p: Policy.objects.filter(pk=p.pk).update(code="other"),
    "policy version": lambda p: Policy.objects.filter(pk=p.pk).update(version=5),
    "policy back to draft": lambda p: Policy.objects.filter(pk=p.pk).update(status=Policy.Status.DRAFT),
}


@pytest.mark.parametrize("edit", PUBLISHED_EDITS.values(), ids=PUBLISHED_EDITS.keys())
def test_the_database_refuses_any_edit_of_a_published_version(default_policy, edit):
    # Given the published default policy (the issue: ¥300 became ¥320 on the live policy)
    before = terms_of(default_policy)

    # When its terms are changed past the services, straight through the ORM
    with pytest.raises(IntegrityError), transaction.atomic():
        edit(Policy.objects.get(pk=default_policy.pk))

    # Then the database refuses, and nothing changed
    assert terms_of(default_policy) == before


def test_the_database_lets_activation_retire_a_version_and_nothing_more(default_policy):
    # When the default policy's window is closed and it is retired, as activation does
    Policy.objects.filter(pk=default_policy.pk).update(
        status=Policy.Status.RETIRED, effective_until=dt.date(2026, 11, 30)
    )

    # Then that passes; but its window closes once, and a retired version stays retired
    default_policy.refresh_from_db()
    assert (default_policy.status, default_policy.effective_until) == ("retired", dt.date(2026, 11, 30))
    for change in (
        {"effective_until": dt.date(2026, 12, 31)},
        {"effective_until": None},
        {"status": Policy.Status.ACTIVE},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Policy.objects.filter(pk=default_policy.pk).update(**change)
    default_policy.refresh_from_db()
    assert (default_policy.status, default_policy.effective_until) == ("retired", dt.date(2026, 11, 30))


def test_the_database_keeps_the_window_of_a_version_that_has_ended(default_policy):
    # Given the default policy retired at the end of 2025 (as a successor from 2026 would)
    Policy.objects.filter(pk=default_policy.pk).update(
        status=Policy.Status.RETIRED, effective_until=dt.date(2025, 12, 31)
    )

    # When its window is cut short afterwards, past the services
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.filter(pk=default_policy.pk).update(effective_until=dt.date(2025, 6, 30))

    # Then it is refused: the second half of 2025 still has its policy
    assert policy_in_force(as_of=dt.date(2025, 9, 1)) == default_policy


@pytest.fixture
def published_with_a_spare_tier(default_policy, bureau):
    """A published version with a tier that no rule grants (so only the trigger can refuse its delete)."""
    draft = copy_policy(policy=default_policy, by=bureau)
    save_tier(
        policy=draft,
        by=bureau,
        code="spare",
        name="备用",
        rank=4,
        government_share_rate=Decimal("0.5000"),
        monthly_face_value=Money("10.00", "CNY"),
    )
    return activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)


@postgres_only(SQLITE_DELETES)
@pytest.mark.parametrize(
    "delete",
    [
        pytest.param(lambda p: p.tiers.get(code="spare").delete(), id="tier"),
        pytest.param(lambda p: p.rules.get(code=LOW_FEE_80).delete(), id="rule"),
        pytest.param(
            lambda p: connection.cursor().execute("DELETE FROM eligibility_policy WHERE id = %s", [p.pk]),
            id="policy row",
        ),
    ],
)
def test_the_database_refuses_deleting_from_a_published_version(published_with_a_spare_tier, delete):
    policy = published_with_a_spare_tier
    before = terms_of(policy)
    with pytest.raises(IntegrityError, match="published policy is fixed"), transaction.atomic():
        delete(policy)
    assert terms_of(policy) == before


def test_the_database_refuses_a_rule_granting_another_policys_tier(default_policy, bureau):
    # Given a draft and a tier of the published default policy
    draft = copy_policy(policy=default_policy, by=bureau)
    rule = draft.rules.get(code="paid_resident")
    foreign = default_policy.tiers.get(code="subsidized")

    # When a raw UPDATE (past every Python check) points the draft's rule at that tier
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE eligibility_policyrule SET tier_id = %s WHERE id = %s", [foreign.pk, rule.pk])

    # Or a new rule is inserted with it
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyRule.objects.bulk_create(
            [PolicyRule(policy=draft, code="foreign", label="外", tier=foreign, condition=rule.condition)]
        )

    # Then the database refuses both, and the rule still grants the draft's own tier
    rule.refresh_from_db()
    assert rule.tier.policy_id == draft.pk
    assert not draft.rules.filter(code="foreign").exists()


def test_the_database_refuses_a_determination_naming_another_policys_tier(register, bureau):
    # Given a senior's determination under the default policy, and a draft's tier
    senior = register()
    determination = Determination.objects.get(senior=senior, is_current=True)
    draft_tier = copy_policy(policy=determination.policy, by=bureau).tiers.get(code="paid")

    # When a raw UPDATE gives the determination the draft's tier
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE eligibility_determination SET tier_id = %s WHERE id = %s",
            [draft_tier.pk, determination.pk],
        )

    # Then the database refuses
    determination.refresh_from_db()
    assert determination.tier.policy_id == determination.policy_id


@postgres_only(SQLITE_NO_EXCLUSION)
def test_the_database_refuses_two_published_versions_in_force_on_one_date(default_policy):
    # Given the default policy, in force from 2025-01-01 with no end
    # When another version is published straight into the table from mid-2026
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.create(code="other", name="重叠", status="active", effective_from=dt.date(2026, 6, 1))

    # Then it is refused; one that ends before the default begins is accepted
    Policy.objects.create(
        code="old",
        name="旧",
        status="retired",
        effective_from=dt.date(2024, 1, 1),
        effective_until=dt.date(2024, 12, 31),
    )
    assert not Policy.objects.filter(code="other").exists()


# --- Activation -----------------------------------------------------------------------------------


def test_activation_from_next_month_retires_the_old_version_the_day_before(default_policy, bureau, now):
    # Given a draft with the low-fee age lowered to 75
    draft = copy_policy(policy=default_policy, by=bureau)
    lower_low_fee_age(draft, by=bureau)

    # When the bureau activates it from next month
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau)

    # Then it is active from the 1st, recorded as theirs; the old version is retired on the 30th
    draft.refresh_from_db()
    default_policy.refresh_from_db()
    assert (draft.status, draft.effective_from, draft.effective_until) == ("active", NEXT_MONTH, None)
    assert (draft.activated_by, draft.activated_at) == (bureau, now)
    assert (default_policy.status, default_policy.effective_until) == ("retired", dt.date(2026, 11, 30))
    # And each date finds the version in force then
    assert policy_in_force(as_of=dt.date(2026, 11, 30)) == default_policy
    assert policy_in_force(as_of=NEXT_MONTH) == draft
    assert policy_in_force(as_of=dt.date(2030, 1, 1)) == draft
    # And neither can change any more
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyRule.objects.filter(policy=draft, code=LOW_FEE_80).update(
            condition={"fact": "age", "op": ">=", "value": 70}
        )


def test_activation_from_today_is_allowed_from_yesterday_refused(default_policy, bureau, now):
    draft = copy_policy(policy=default_policy, by=bureau)

    # When the bureau activates the draft from yesterday
    with refused("invalid_input") as refusal:
        activate_policy(policy=draft, effective_from=TODAY - dt.timedelta(days=1), by=bureau)

    # Then it is refused, naming the date, and nothing changed
    assert refusal.value.field == "effective_from" and "2026-11-15" in refusal.value.detail
    draft.refresh_from_db()
    default_policy.refresh_from_db()
    assert (draft.status, default_policy.status, default_policy.effective_until) == ("draft", "active", None)

    # And from today it is accepted
    activate_policy(policy=draft, effective_from=TODAY, by=bureau)
    default_policy.refresh_from_db()
    assert (default_policy.status, default_policy.effective_until) == ("retired", dt.date(2026, 11, 15))
    assert policy_in_force(as_of=TODAY).pk == draft.pk


def test_activation_refuses_to_overlap_a_version_already_scheduled(default_policy, bureau, now):
    # Given version 2 scheduled from 2027-01-01
    second = copy_policy(policy=default_policy, by=bureau)
    activate_policy(policy=second, effective_from=dt.date(2027, 1, 1), by=bureau)
    third = copy_policy(policy=second, by=bureau)

    # When version 3 is activated from a date on or before that
    for day in (NEXT_MONTH, dt.date(2027, 1, 1)):
        with refused("policy_overlap") as refusal:
            activate_policy(policy=third, effective_from=day, by=bureau)

        # Then it is refused, naming the scheduled version's start
        assert refusal.value.code == "policy_overlap" and "2027-01-01" in refusal.value.detail
    third.refresh_from_db()
    assert third.status == "draft"

    # And from after it, version 3 retires version 2 the day before
    activate_policy(policy=third, effective_from=dt.date(2027, 2, 1), by=bureau)
    second.refresh_from_db()
    assert (second.status, second.effective_until) == ("retired", dt.date(2027, 1, 31))
    assert [p.version for p in Policy.objects.order_by("version")] == [1, 2, 3]
    assert policy_in_force(as_of=dt.date(2026, 12, 31)).version == 1
    assert policy_in_force(as_of=dt.date(2027, 1, 31)).version == 2
    assert policy_in_force(as_of=dt.date(2027, 2, 1)).version == 3


def test_activation_needs_the_permission_and_a_tier_rule(default_policy, bureau, worker, now):
    draft = copy_policy(policy=default_policy, by=bureau)
    with refused("not_permitted"):
        activate_policy(policy=draft, effective_from=NEXT_MONTH, by=worker)
    for rule in draft.rules.filter(tier__isnull=False):
        delete_rule(rule=rule, by=bureau)
    with refused("invalid_input"):
        activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau)
    draft.refresh_from_db()
    assert draft.status == "draft" and policy_in_force(as_of=NEXT_MONTH) == default_policy


@pytest.fixture
def two_drafts(transactional_db):
    """Two drafts of different codes, committed (each thread reads them on its own connection)."""
    setup_roles()
    policy = ensure_default_policy()
    bureau = make_user("bureau-admin", BUREAU)
    return bureau, [
        copy_policy(policy=policy, by=bureau),
        copy_policy(policy=policy, by=bureau, code="city-b"),
    ]


def activate_at_once(bureau, drafts) -> list[str]:
    """Activate each draft from 1 December in its own thread, released together; their outcomes."""
    barrier = threading.Barrier(len(drafts))

    def activate(draft):
        try:
            barrier.wait(timeout=10)
            activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)
            return "activated"
        except EligibilityError as error:
            return error.code
        except IntegrityError:
            return "integrity_error"
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(drafts)) as pool:
        return sorted(pool.map(activate, drafts))


@postgres_only(SQLITE_NO_ROW_LOCKS)
def test_two_activations_from_the_same_day_at_once_leave_one_version_in_force(two_drafts):
    # When the bureau activates two drafts from 1 December at the same moment
    outcomes = activate_at_once(*two_drafts)

    # Then one is in force from then, the other refused (the database's exclusion constraint holds)
    assert outcomes[0] == "activated" and outcomes[1] != "activated"
    assert Policy.objects.filter(status="active").count() == 1
    assert policy_in_force(as_of=NEXT_MONTH).effective_from == NEXT_MONTH


@postgres_only(SQLITE_NO_ROW_LOCKS)
def test_an_activation_waiting_on_another_is_refused_as_an_overlap(two_drafts):
    bureau, (first, second) = two_drafts
    first_activated, release = threading.Event(), threading.Event()

    def activate_first_and_hold():
        try:
            with transaction.atomic():
                activate_policy(policy=first, effective_from=NEXT_MONTH, by=bureau, today=TODAY)
                first_activated.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    def activate_second():
        try:
            first_activated.wait(timeout=10)
            activate_policy(policy=second, effective_from=NEXT_MONTH, by=bureau, today=TODAY)
            return "activated"
        except EligibilityError as error:
            return error.code
        except IntegrityError:
            return "integrity_error"
        finally:
            connection.close()

    # Given one activation from 1 December not yet committed, and a second one waiting on its locks
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(activate_first_and_hold)
        waiting = pool.submit(activate_second)
        with connection.cursor() as cursor:
            for _ in range(100):
                cursor.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                if cursor.fetchone()[0]:
                    break
                time.sleep(0.05)
        # When the first commits
        release.set()
        held.result()

        # Then the second is refused with the overlap code, as it is when it comes later
        assert waiting.result() == "policy_overlap"
    assert Policy.objects.filter(status="active").count() == 1


def test_activation_refuses_a_draft_whose_condition_is_not_valid(default_policy, bureau, now):
    # Given a draft whose subsidized rule was given an age in words, past the services (as the
    # admin's inline form saves it)
    draft = copy_policy(policy=default_policy, by=bureau)
    PolicyRule.objects.filter(policy=draft, code="subsidized_centenarian").update(
        condition={"fact": "age", "op": ">=", "value": "一百"}
    )

    # When the bureau activates it
    with refused("invalid_condition") as refusal:
        activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau)

    # Then it is refused, naming the rule's problem, and the version in force stays in force
    assert "value" in refusal.value.detail
    draft.refresh_from_db()
    assert draft.status == "draft" and policy_in_force(as_of=NEXT_MONTH) == default_policy


def test_activation_and_later_evaluation_leave_past_determinations_vouchers_and_redemptions_alone(
    now, bureau
):
    # Given November's determinations, vouchers and a service recorded against a voucher
    world = build_world()
    redeem(
        token=voucher_token(world.vouchers["low_fee"]),
        service_item_code="cleaning",
        quantity=Decimal("2"),
        idempotency_key=uuid.uuid4().hex,
        staff=world.staff,
        now=now,
    )
    determinations = list(Determination.objects.order_by("pk").values())
    vouchers = list(Voucher.objects.order_by("pk").values())
    redemptions = list(Redemption.objects.order_by("pk").values())
    assert len(vouchers) == 4 and len(redemptions) == 1

    # When a version with the low-fee age at 75 is activated from December
    draft = copy_policy(policy=policy_in_force(as_of=TODAY), by=bureau)
    lower_low_fee_age(draft, by=bureau)
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau)

    # Then nothing decided or priced before changed
    assert list(Determination.objects.order_by("pk").values()) == determinations
    assert list(Voucher.objects.order_by("pk").values()) == vouchers
    assert list(Redemption.objects.order_by("pk").values()) == redemptions

    # When December is evaluated under the new version
    evaluate_eligibility(as_of=NEXT_MONTH)

    # Then the old determinations only stop being current; vouchers and redemptions are untouched
    old = Determination.objects.filter(pk__in=[d["id"] for d in determinations]).order_by("pk").values()
    assert [{**d, "is_current": None} for d in old] == [{**d, "is_current": None} for d in determinations]
    assert list(Voucher.objects.order_by("pk").values()) == vouchers
    assert list(Redemption.objects.order_by("pk").values()) == redemptions
    assert set(Voucher.objects.values_list("tier__policy", flat=True)) == {determinations[0]["policy_id"]}


# --- Evaluation under a new version --------------------------------------------------------------


@pytest.fixture
def registry(register):
    """Seniors on either side of the low-fee rule, ages as of next month."""
    return {
        "77 empty-nest": register(born_aged(77), **EMPTY_NEST),
        "77 empty-nest, assisted": register(
            born_aged(77), **EMPTY_NEST, receives_civil_affairs_assistance=True
        ),
        "75 tomorrow, empty-nest": register(dt.date(1951, 12, 2), **EMPTY_NEST),
        "75 today, alone": register(dt.date(1951, 12, 1), living_arrangement="alone", children_in_city=False),
        "77 with family": register(born_aged(77)),
        "85 empty-nest": register(born_aged(85), **EMPTY_NEST),
        "three-no": register(born_aged(70), three_no=True),
    }


def test_evaluation_under_the_new_version_moves_exactly_the_affected_seniors(
    registry, default_policy, bureau
):
    # Given the registry evaluated for December under the default policy
    evaluate_eligibility(as_of=NEXT_MONTH)
    before = {name: tier_of(senior) for name, senior in registry.items()}

    # When a version with the low-fee age at 75 is activated from December and December evaluated
    draft = copy_policy(policy=default_policy, by=bureau)
    lower_low_fee_age(draft, by=bureau)
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)
    evaluate_eligibility(as_of=NEXT_MONTH, determined_by=bureau)
    after = {name: tier_of(senior) for name, senior in registry.items()}

    # Then exactly the 75–79-year-old empty-nesters without assistance move from paid to low fee
    assert {name: (before[name], after[name]) for name in registry if before[name] != after[name]} == {
        "77 empty-nest": ("paid", "low_fee"),
        "75 today, alone": ("paid", "low_fee"),
    }
    assert after["85 empty-nest"] == "low_fee" and after["three-no"] == "subsidized"
    # And every current determination names the new version and its tiers, as of December, by the bureau
    current = Determination.objects.filter(is_current=True, senior__in=registry.values()).select_related(
        "tier"
    )
    assert {(d.policy_id, d.tier.policy_id, d.as_of, d.determined_by_id) for d in current} == {
        (draft.pk, draft.pk, NEXT_MONTH, bureau.pk)
    }
    moved = current.get(senior=registry["77 empty-nest"])
    assert LOW_FEE_80 in moved.matched_rules and moved.matched_rules == sorted(moved.matched_rules)


def test_a_rerun_with_nothing_changed_writes_nothing(registry):
    # Given the registry evaluated for December
    evaluate_eligibility(as_of=NEXT_MONTH)
    rows = list(Determination.objects.order_by("pk").values())

    # When it is evaluated again (and again a day later) with nothing changed
    again = evaluate_eligibility(as_of=NEXT_MONTH)
    later = evaluate_eligibility(as_of=NEXT_MONTH + dt.timedelta(days=1))

    # Then nothing is written
    assert (again.changed, again.retired, later.changed, later.retired) == (0, 0, 0, 0)
    assert again.evaluated == len(registry)
    assert list(Determination.objects.order_by("pk").values()) == rows


def test_evaluating_no_one_writes_nothing(registry):
    # An empty list of seniors (an import that touched no one) evaluates nobody
    rows = list(Determination.objects.order_by("pk").values())
    result = evaluate_eligibility(as_of=NEXT_MONTH, senior_ids=[])
    assert (result.evaluated, result.changed, result.retired) == (0, 0, 0)
    assert list(Determination.objects.order_by("pk").values()) == rows


def test_a_senior_matching_only_a_care_rule_keeps_the_class_without_a_tier(
    registry, register, default_policy, bureau
):
    # Given a version without the "every resident 60+ pays" rule, in force from December
    disabled = register(born_aged(66), self_care="disabled")
    plain = registry["77 with family"]
    draft = copy_policy(policy=default_policy, by=bureau)
    delete_rule(rule=draft.rules.get(code="paid_resident"), by=bureau)
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)

    # When December is evaluated
    result = evaluate_eligibility(as_of=NEXT_MONTH)

    # Then a disabled 66-year-old (no tier rule) keeps class A with no tier
    determination = Determination.objects.get(senior=disabled, is_current=True)
    assert (determination.tier, determination.care_visit_class, determination.matched_rules) == (
        None,
        "A",
        ["care_a_disabled"],
    )
    assert determination.policy_id == draft.pk
    # And those who match nothing at all (under 80, not empty-nest and disabled, no flag) have no
    # current determination any more
    assert not Determination.objects.filter(senior=plain, is_current=True).exists()
    left_without = set(registry) - {
        name
        for name, senior in registry.items()
        if Determination.objects.filter(senior=senior, is_current=True).exists()
    }
    assert left_without == {
        "77 empty-nest",
        "77 empty-nest, assisted",
        "75 tomorrow, empty-nest",
        "75 today, alone",
        "77 with family",
    }
    assert result.retired == 5


def test_outside_the_policys_population_there_is_no_determination(
    register, default_policy, bureau, community
):
    # Given a senior of 62 and one of 70, and a record of a 58-year-old from an old register
    young = register(born_aged(62))
    older = register(born_aged(70))
    legacy = SeniorFactory(birth_date=born_aged(58), community=community)
    evaluate_eligibility(as_of=NEXT_MONTH)
    assert tier_of(young) == "paid" and not Determination.objects.filter(senior=legacy).exists()

    # When a version covering 65+ only is in force from December and December is evaluated
    draft = copy_policy(policy=default_policy, by=bureau)
    update_draft(policy=draft, by=bureau, population={"fact": "age", "op": ">=", "value": 65})
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)
    result = evaluate_eligibility(as_of=NEXT_MONTH)

    # Then the 62-year-old has no determination any more (though "paid_resident" still matches her)
    assert result.retired == 1
    assert not Determination.objects.filter(senior=young, is_current=True).exists()
    assert tier_of(older) == "paid"
    assert not Determination.objects.filter(senior=legacy).exists()


def test_evaluation_takes_the_same_few_queries_for_five_seniors_or_fifty(
    default_policy, community, django_assert_max_num_queries
):
    def evaluation_queries() -> int:
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(15):
            evaluate_eligibility(as_of=NEXT_MONTH)
        return len(queries)

    # Given 5 seniors, then 45 more
    for i in range(5):
        SeniorFactory(birth_date=born_aged(60 + i), community=community, three_no=bool(i % 2))
    with_five = evaluation_queries()
    for i in range(45):
        SeniorFactory(birth_date=born_aged(60 + i % 45), community=community, self_care="disabled")

    # Then evaluating fifty takes as many statements as evaluating five
    assert evaluation_queries() == with_five
    assert Determination.objects.filter(is_current=True).count() == 50


# --- Attribution ----------------------------------------------------------------------------------


@pytest.fixture
def unevaluated(default_policy, community):
    """Seniors from an old register, never evaluated."""
    return [SeniorFactory(birth_date=born_aged(65 + i), community=community) for i in range(3)]


def test_a_determination_names_the_user_who_evaluated(unevaluated, bureau):
    evaluate_eligibility(as_of=NEXT_MONTH, determined_by=bureau)
    assert set(Determination.objects.values_list("determined_by", "determined_by_job")) == {(bureau.pk, "")}


def test_the_evaluate_eligibility_command_is_recorded_as_its_job(unevaluated):
    # When the command evaluates December
    out = io.StringIO()
    call_command("evaluate_eligibility", "--as-of", "2026-12-01", stdout=out)

    # Then it says what it did, and each determination names the command, no user
    assert "evaluated 3 seniors as of 2026-12-01, 3 new determinations, 0 no longer qualify" in out.getvalue()
    assert COMMAND_JOB == "manage.py evaluate_eligibility"
    assert set(Determination.objects.values_list("determined_by", "determined_by_job", "as_of")) == {
        (None, COMMAND_JOB, NEXT_MONTH)
    }


def test_the_month_end_beat_task_evaluates_as_of_the_first_recorded_as_its_job(unevaluated, monkeypatch):
    from config.celery import app

    # Given the beat schedule runs the task on days 28–31
    assert "eligibility.tasks.evaluate_eligibility_at_month_end" in {
        entry["task"] for entry in app.conf.beat_schedule.values()
    }

    # When it runs on 29 November, it does nothing
    monkeypatch.setattr("django.utils.timezone.now", lambda: dt.datetime(2026, 11, 29, 22, tzinfo=SHANGHAI))
    assert tasks.evaluate_eligibility_at_month_end() is None
    assert not Determination.objects.exists()

    # When it runs on the 30th (Shanghai), it evaluates as of 1 December under its own name
    monkeypatch.setattr("django.utils.timezone.now", lambda: dt.datetime(2026, 11, 30, 22, tzinfo=SHANGHAI))
    assert tasks.evaluate_eligibility_at_month_end() == {
        "as_of": "2026-12-01",
        "evaluated": 3,
        "changed": 3,
        "retired": 0,
    }
    assert set(Determination.objects.values_list("determined_by", "determined_by_job", "as_of")) == {
        (None, tasks.MONTH_END_JOB, NEXT_MONTH)
    }


def test_an_evaluation_run_from_the_page_is_queued_and_attributed_to_who_started_it(
    unevaluated, bureau, monkeypatch, django_capture_on_commit_callbacks
):
    progress = LocMemCache("evaluation-progress-test", {})
    monkeypatch.setattr("eligibility.services.cache", progress)

    # When the bureau starts an evaluation, it is queued for after the commit
    with django_capture_on_commit_callbacks(execute=False) as queued:
        run = start_evaluation(as_of=NEXT_MONTH, by=bureau)
    assert len(queued) == 1 and run.state == EvaluationRun.State.QUEUED

    # And when the worker runs it
    finished = finish_evaluation(run_id=run.pk)

    # Then the run is done with its figures, and each determination names the bureau user
    assert (finished.state, finished.policy, finished.evaluated, finished.changed) == (
        "done",
        Policy.objects.get(),
        3,
        3,
    )
    assert progress.get(evaluation_progress_key(run.pk)) == {"done": 5, "total": 5}
    assert set(Determination.objects.values_list("determined_by", "determined_by_job")) == {(bureau.pk, "")}
    # And a run delivered twice does nothing more
    assert finish_evaluation(run_id=run.pk).changed == 3
    assert Determination.objects.count() == 3


def test_an_edit_after_the_month_end_evaluation_keeps_next_months_version(
    register, default_policy, bureau, worker, monkeypatch
):
    from eligibility.services import update_senior
    from vouchers.services import issue_vouchers

    # Given a December version paying ¥250 for low fee, and a low-fee senior
    senior = register(born_aged(82), **EMPTY_NEST)
    draft = copy_policy(policy=default_policy, by=bureau)
    save_tier(
        policy=draft,
        by=bureau,
        tier=draft.tiers.get(code="low_fee"),
        monthly_face_value=Money("250.00", "CNY"),
    )
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)

    # And the month-end run on 30 November, evaluating as of 1 December
    month_end = dt.datetime(2026, 11, 30, 22, 0, tzinfo=SHANGHAI)
    monkeypatch.setattr("django.utils.timezone.now", lambda: month_end)
    tasks.evaluate_eligibility_at_month_end()
    assert Determination.objects.get(senior=senior, is_current=True).policy_id == draft.pk

    # When a worker records a fact half an hour later, and December's vouchers are issued
    monkeypatch.setattr("django.utils.timezone.now", lambda: month_end + dt.timedelta(minutes=30))
    update_senior(senior=senior, by=worker, dementia=True)
    issue_vouchers(period=NEXT_MONTH, now=dt.datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI))

    # Then her December voucher carries December's terms
    voucher = Voucher.objects.get(senior=senior, period=NEXT_MONTH)
    assert (voucher.tier.policy_id, voucher.face_value) == (draft.pk, Money("250.00", "CNY"))


def test_a_failed_evaluation_run_says_why(unevaluated, bureau, monkeypatch):
    # Given a queued run whose evaluation fails
    run = start_evaluation(as_of=NEXT_MONTH, by=bureau)

    def fail(**kwargs):
        raise EligibilityError("no_policy", "No policy is in force on %(date)s.", date="2026-12-01")

    monkeypatch.setattr("eligibility.services.evaluate_eligibility", fail)

    # When the worker runs it
    run = finish_evaluation(run_id=run.pk)

    # Then the run is failed with the reason (for the page to show), and nothing was written
    assert (run.state, run.error) == ("failed", "No policy is in force on 2026-12-01.")
    assert run.finished_at is not None and not Determination.objects.exists()


def test_starting_an_evaluation_needs_the_permission_and_a_policy(unevaluated, bureau, worker):
    with refused("not_permitted"):
        start_evaluation(as_of=NEXT_MONTH, by=worker)
    with refused("no_policy"):
        start_evaluation(as_of=dt.date(2024, 12, 31), by=bureau)
    assert not EvaluationRun.objects.exists()


# --- Manual tiers (overrides) ---------------------------------------------------------------------


@pytest.fixture
def paid_senior(register):
    senior = register(born_aged(72))
    assert tier_of(senior) == "paid"
    return senior


def test_a_manual_tier_wins_until_it_expires(paid_senior, worker):
    # When a worker sets a subsidized tier for 30 days
    expires = TODAY + dt.timedelta(days=30)
    override = set_tier_override(
        senior=paid_senior, tier_code="subsidized", reason="突发重病，家庭困难", expires_on=expires, by=worker
    )

    # Then the senior is subsidized at once, shown as the override, the rules' matches still recorded
    determination = Determination.objects.select_related("tier").get(senior=paid_senior, is_current=True)
    assert (determination.tier.code, determination.override, determination.matched_rules) == (
        "subsidized",
        override,
        ["paid_resident"],
    )
    assert determination.determined_by == worker

    # And evaluation respects it up to its last day
    assert evaluate_eligibility(as_of=expires).changed == 0
    assert tier_of(paid_senior) == "subsidized"

    # And the day after, the rules decide again
    assert evaluate_eligibility(as_of=expires + dt.timedelta(days=1)).changed == 1
    determination = Determination.objects.get(senior=paid_senior, is_current=True)
    assert (determination.tier.code, determination.override) == ("paid", None)


def test_ending_a_manual_tier_gives_the_rules_back_at_once(paid_senior, worker):
    set_tier_override(
        senior=paid_senior,
        tier_code="low_fee",
        reason="临时困难",
        expires_on=TODAY + dt.timedelta(days=60),
        by=worker,
    )

    # When the worker ends it early, saying why
    assert end_tier_override(senior=paid_senior, by=worker, reason="困难已解除") == 1

    # Then the rules decide again at once, and the end is recorded
    determination = Determination.objects.get(senior=paid_senior, is_current=True)
    assert (determination.tier.code, determination.override) == ("paid", None)
    override = TierOverride.objects.get(senior=paid_senior)
    assert (override.ended_at is not None, override.ended_by, override.end_reason) == (
        True,
        worker,
        "困难已解除",
    )
    # And evaluation does not bring it back
    assert evaluate_eligibility(as_of=TODAY).changed == 0


def test_a_new_manual_tier_replaces_the_open_one(paid_senior, worker):
    first = set_tier_override(
        senior=paid_senior,
        tier_code="low_fee",
        reason="临时困难",
        expires_on=TODAY + dt.timedelta(days=60),
        by=worker,
    )
    second = set_tier_override(
        senior=paid_senior,
        tier_code="subsidized",
        reason="病情加重",
        expires_on=TODAY + dt.timedelta(days=90),
        by=worker,
    )
    first.refresh_from_db()
    assert (first.ended_at is not None, first.end_reason) == (True, "replaced")
    assert Determination.objects.get(senior=paid_senior, is_current=True).override == second
    assert tier_of(paid_senior) == "subsidized"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"tier_code": "gold", "reason": "x", "expires_on": TODAY + dt.timedelta(days=10)}, "tier_code"),
        ({"tier_code": "subsidized", "reason": "  ", "expires_on": TODAY + dt.timedelta(days=10)}, "reason"),
        (
            {"tier_code": "subsidized", "reason": "x", "expires_on": TODAY - dt.timedelta(days=1)},
            "expires_on",
        ),
        (
            {"tier_code": "subsidized", "reason": "x", "expires_on": TODAY + dt.timedelta(days=400)},
            "expires_on",
        ),
    ],
)
def test_a_manual_tier_needs_a_tier_in_force_a_reason_and_an_expiry_within_a_year(
    paid_senior, worker, values, field
):
    with refused("invalid_input") as refusal:
        set_tier_override(senior=paid_senior, by=worker, **values)
    assert refusal.value.field == field
    assert not TierOverride.objects.exists() and tier_of(paid_senior) == "paid"


def test_a_manual_tier_carries_over_to_a_new_version_by_its_code(paid_senior, worker, default_policy, bureau):
    # Given a manual subsidized tier until February, and a new version from December
    override = set_tier_override(
        senior=paid_senior,
        tier_code="subsidized",
        reason="突发重病",
        expires_on=dt.date(2027, 2, 1),
        by=worker,
    )
    draft = copy_policy(policy=default_policy, by=bureau)
    activate_policy(policy=draft, effective_from=NEXT_MONTH, by=bureau, today=TODAY)

    # When December is evaluated
    evaluate_eligibility(as_of=NEXT_MONTH)

    # Then the senior has the new version's subsidized tier, still shown as the override
    determination = Determination.objects.select_related("tier").get(senior=paid_senior, is_current=True)
    assert (determination.tier.policy_id, determination.tier.code, determination.override) == (
        draft.pk,
        "subsidized",
        override,
    )


# --- Simulation (what-if) -------------------------------------------------------------------------


@pytest.fixture
def two_districts(register):
    """Seven seniors in two districts (ages as of December); the comments say their tiers under
    the default policy and under a draft with the low-fee age at 75."""
    a, b = make_community("A"), make_community("B")
    return {
        "A": [
            register(born_aged(77), where=a, **EMPTY_NEST),  # paid -> low fee
            register(born_aged(77), where=a),  # paid -> paid
            register(born_aged(70), where=a, three_no=True),  # subsidized -> subsidized
            register(born_aged(82), where=a, **EMPTY_NEST),  # low fee -> low fee, care class A
        ],
        "B": [
            register(
                born_aged(76), where=b, living_arrangement="alone", children_in_city=False
            ),  # -> low fee
            register(dt.date(1951, 12, 1), where=b, **EMPTY_NEST),  # 75 on 1 December: -> low fee
            register(dt.date(1951, 12, 2), where=b, **EMPTY_NEST),  # 75 the day after: paid -> paid
            register(born_aged(77), where=b, **EMPTY_NEST, receives_civil_affairs_assistance=True),  # paid
        ],
    }


@pytest.fixture
def lowered_draft(default_policy, bureau):
    draft = copy_policy(policy=default_policy, by=bureau)
    lower_low_fee_age(draft, by=bureau)
    return draft


def written_rows() -> tuple:
    return (
        list(Determination.objects.order_by("pk").values()),
        EvaluationRun.objects.count(),
        list(Policy.objects.order_by("pk").values()),
        list(Tier.objects.order_by("pk").values()),
    )


def test_a_simulation_counts_the_moves_and_the_budget_per_district_and_writes_nothing(
    two_districts, lowered_draft, default_policy
):
    before = written_rows()

    # When the draft is simulated against the policy in force, as of December
    simulation = simulate_policy(draft=lowered_draft, as_of=NEXT_MONTH)

    # Then the tier moves are counted from -> to
    assert simulation.current == default_policy and simulation.seniors == 8
    assert {(m["from"].code, m["to"].code): (m["seniors"], m["moved"]) for m in simulation.tier_moves} == {
        ("subsidized", "subsidized"): (1, False),
        ("low_fee", "low_fee"): (1, False),
        ("paid", "low_fee"): (3, True),
        ("paid", "paid"): (3, False),
    }
    assert {(m["from"], m["to"]): m["seniors"] for m in simulation.care_moves} == {("A", "A"): 1, ("", ""): 7}

    # And the monthly voucher budget per district, before and after
    assert [
        (d["region"].code, d["seniors"], d["moved"], d["current"], d["draft"], d["difference"])
        for d in simulation.districts
    ] == [
        ("AD", 4, 1, Money("500.00", "CNY"), Money("700.00", "CNY"), Money("200.00", "CNY")),
        ("BD", 4, 2, Money("0.00", "CNY"), Money("400.00", "CNY"), Money("400.00", "CNY")),
    ]
    assert (simulation.total["current"], simulation.total["draft"], simulation.total["difference"]) == (
        Money("500.00", "CNY"),
        Money("1100.00", "CNY"),
        Money("600.00", "CNY"),
    )
    # And nothing was written
    assert written_rows() == before


def test_a_simulation_counts_care_class_moves_and_those_who_lose_their_tier(
    two_districts, default_policy, bureau
):
    # Given a draft where class A needs 85+ (not 80+) and that covers those over 70 only
    draft = copy_policy(policy=default_policy, by=bureau)
    rule = draft.rules.get(code="care_a_80_alone")
    condition = copy.deepcopy(rule.condition)
    condition["all"][0]["value"] = 85
    save_rule(policy=draft, by=bureau, rule=rule, condition=condition)
    update_draft(policy=draft, by=bureau, population={"fact": "age", "op": ">", "value": 70})

    # When it is simulated
    simulation = simulate_policy(draft=draft, as_of=NEXT_MONTH)

    # Then the 82-year-old moves from class A to none, and the 70-year-old from subsidized to nothing
    assert {(m["from"], m["to"]): m["seniors"] for m in simulation.care_moves} == {("A", ""): 1, ("", ""): 7}
    lost = [m for m in simulation.tier_moves if m["to"] is None]
    assert [(m["from"].code, m["seniors"]) for m in lost] == [("subsidized", 1)]
    district_a = simulation.districts[0]
    assert (district_a["moved"], district_a["difference"]) == (2, Money("-300.00", "CNY"))


def test_a_simulation_prices_the_budget_at_the_drafts_own_face_values(two_districts, default_policy, bureau):
    # Given a draft that only raises the low-fee face value from ¥200 to ¥250
    draft = copy_policy(policy=default_policy, by=bureau)
    save_tier(
        policy=draft,
        by=bureau,
        tier=draft.tiers.get(code="low_fee"),
        monthly_face_value=Money("250.00", "CNY"),
    )

    # When it is simulated
    simulation = simulate_policy(draft=draft, as_of=NEXT_MONTH)

    # Then no one moves, but district A's one low-fee senior costs ¥50 more a month
    assert all(not move["moved"] for move in simulation.tier_moves)
    assert [(d["region"].code, d["moved"], d["difference"]) for d in simulation.districts] == [
        ("AD", 0, Money("50.00", "CNY")),
        ("BD", 0, Money("0.00", "CNY")),
    ]


def test_a_simulation_of_an_unchanged_copy_moves_no_one_and_counts_what_evaluation_stores(
    two_districts, default_policy, bureau
):
    # Given the registry evaluated for December, and an unchanged copy of the policy
    evaluate_eligibility(as_of=NEXT_MONTH)
    draft = copy_policy(policy=default_policy, by=bureau)

    # When the copy is simulated
    simulation = simulate_policy(draft=draft, as_of=NEXT_MONTH)

    # Then no one moves, the budget is the same, and the counts are the stored determinations'
    assert all(not move["moved"] for move in simulation.tier_moves + simulation.care_moves)
    assert simulation.total["difference"] == Money("0.00", "CNY")
    stored = Determination.objects.filter(is_current=True).select_related("tier")
    counts = {}
    for determination in stored:
        counts[determination.tier.code] = counts.get(determination.tier.code, 0) + 1
    assert {move["from"].code: move["seniors"] for move in simulation.tier_moves} == counts
    assert simulation.total["current"] == sum((d.tier.monthly_face_value for d in stored), Money(0, "CNY"))


def test_a_simulation_never_moves_a_senior_with_a_manual_tier(two_districts, lowered_draft, worker):
    # Given the 77-year-old empty-nester of district A on a manual paid tier until next year
    senior = two_districts["A"][0]
    set_tier_override(
        senior=senior, tier_code="paid", reason="家属代为申请有偿", expires_on=dt.date(2027, 6, 1), by=worker
    )

    # When the draft with the low-fee age at 75 is simulated
    simulation = simulate_policy(draft=lowered_draft, as_of=NEXT_MONTH)

    # Then she stays paid: only district B's two move
    moves = {(m["from"].code, m["to"].code): m["seniors"] for m in simulation.tier_moves}
    assert moves[("paid", "low_fee")] == 2
    assert [(d["region"].code, d["moved"]) for d in simulation.districts] == [("AD", 0), ("BD", 2)]


def test_a_simulation_needs_a_policy_in_force(lowered_draft):
    with refused("no_policy"):
        simulate_policy(draft=lowered_draft, as_of=dt.date(2024, 6, 1))


# --- The commands ---------------------------------------------------------------------------------


def test_the_simulate_policy_command_prints_the_moves_and_the_budget(two_districts, lowered_draft):
    before = written_rows()
    out = io.StringIO()
    call_command("simulate_policy", "--draft", "default", "--as-of", "2026-12-01", stdout=out)
    text = out.getvalue()
    assert "(draft) against" in text and "as of 2026-12-01: 8 seniors" in text
    assert " * paid -> low_fee: 3\n" in text and "   paid -> paid: 3\n" in text
    assert "   A -> A: 1\n" in text
    assert "AD 西湖区: 500.00 -> 700.00 (+200.00), 1 of 4 seniors move" in text
    assert "BD 西湖区: 0.00 -> 400.00 (+400.00), 2 of 4 seniors move" in text
    assert "whole city: 500.00 -> 1100.00 (+600.00), 3 of 8 seniors move" in text
    assert written_rows() == before


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--draft", "nothing"], "no draft of policy 'nothing'"),
        (["--draft", "default", "--as-of", "1 Dec"], "--as-of must be a date"),
        (["--draft", "default", "--as-of", "2024-06-01"], "2024-06-01"),
    ],
)
def test_the_simulate_policy_command_refuses_with_a_message(lowered_draft, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("simulate_policy", *arguments, stdout=io.StringIO())


def test_the_activate_policy_command_activates_a_draft_from_a_date(
    lowered_draft, default_policy, bureau, now
):
    out = io.StringIO()
    call_command(
        "activate_policy", "--code", "default", "--from", "2026-12-01", "--by", bureau.username, stdout=out
    )
    assert "is active from 2026-12-01" in out.getvalue()
    lowered_draft.refresh_from_db()
    default_policy.refresh_from_db()
    assert (lowered_draft.status, lowered_draft.activated_by) == ("active", bureau)
    assert default_policy.effective_until == dt.date(2026, 11, 30)
    # And there is no draft left to activate
    with pytest.raises(CommandError, match="no draft of policy 'default'"):
        call_command("activate_policy", "--code", "default", "--from", "2027-01-01", stdout=io.StringIO())


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--from", "2026-11-01"], "2026-11-01"),  # the past
        (["--from", "December"], "--from must be a date"),
        (["--from", "2026-12-01", "--by", "nobody"], "no user 'nobody'"),
    ],
)
def test_the_activate_policy_command_refuses_with_a_message(lowered_draft, now, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("activate_policy", "--code", "default", *arguments, stdout=io.StringIO())
    lowered_draft.refresh_from_db()
    assert lowered_draft.status == "draft"


def test_the_activate_policy_command_refuses_an_overlap(lowered_draft, default_policy, bureau, now):
    # Given version 2 scheduled from 2027-01-01 and a draft of version 3
    call_command("activate_policy", "--code", "default", "--from", "2027-01-01", stdout=io.StringIO())
    copy_policy(policy=lowered_draft, by=bureau)

    # Then version 3 from December is refused
    with pytest.raises(CommandError, match="2027-01-01"):
        call_command("activate_policy", "--code", "default", "--from", "2026-12-01", stdout=io.StringIO())
    assert Policy.objects.get(version=3).status == "draft"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--as-of", "2024-12-31"], "2024-12-31"), (["--as-of", "31/12/2026"], "--as-of must be a date")],
)
def test_the_evaluate_eligibility_command_refuses_with_a_message(unevaluated, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("evaluate_eligibility", *arguments, stdout=io.StringIO())
    assert not Determination.objects.exists()


@postgres_only("SQLite serialises all writers: concurrent evaluations need PostgreSQL")
def test_an_edit_during_a_city_evaluation_waits_for_it_and_leaves_one_current_determination(transactional_db):
    setup_roles()
    ensure_default_policy()
    worker = make_user("community-worker", "worker")
    senior = SeniorFactory(birth_date=born_aged(70), community=make_community("Q"))
    evaluate_eligibility(as_of=TODAY)
    # The city run will change this senior (subsidized now), and so will the worker's edit
    Senior.objects.filter(pk=senior.pk).update(three_no=True)
    city_done, release = threading.Event(), threading.Event()

    def city_run_held_open():
        try:
            with transaction.atomic():
                evaluate_eligibility(as_of=TODAY, job="month end")
                city_done.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    def edit():
        try:
            city_done.wait(timeout=10)
            update_senior(senior=Senior.objects.get(pk=senior.pk), by=worker, hardship_assessed=True)
            return "saved"
        except Exception as error:  # the failure this test is about: IntegrityError after the wait
            return repr(error)
        finally:
            connection.close()

    # Given a whole-city evaluation not yet committed, and a worker editing a senior it changed
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(city_run_held_open)
        edited = pool.submit(edit)
        city_done.wait(timeout=10)
        time.sleep(0.5)

        # Then the edit waits for the evaluation, and saves once the evaluation commits
        assert not edited.done()
        release.set()
        held.result(timeout=10)
        assert edited.result(timeout=10) == "saved"

    # And the senior has exactly one current determination, which reflects both changes
    current = Determination.objects.filter(senior=senior, is_current=True)
    assert current.count() == 1
    assert "low_fee_hardship" in current.get().matched_rules
    assert current.get().tier.code == "subsidized"


def test_evaluating_now_looks_ahead_only_to_the_month_end_runs_first_of_next_month(default_policy):
    from eligibility.selectors import evaluation_date

    # Given someone tried a far date out, the evaluation date is still today
    EvaluationRun.objects.create(as_of=dt.date(2027, 6, 1), state="done", job="trying a date")
    EvaluationRun.objects.create(as_of=NEXT_MONTH, state="failed", job="month end, failed")
    assert evaluation_date(today=TODAY) == TODAY
    # When the month-end run has decided next month, "now" is the 1st of next month
    EvaluationRun.objects.create(as_of=NEXT_MONTH, state="done", job="month end")
    assert evaluation_date(today=TODAY) == NEXT_MONTH
    # And from the 1st on it is today again
    assert evaluation_date(today=NEXT_MONTH + dt.timedelta(days=1)) == NEXT_MONTH + dt.timedelta(days=1)
