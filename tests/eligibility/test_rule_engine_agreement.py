"""One condition, two evaluators, same answer (the policies issue, item 3).

Hypothesis generates registries of random seniors (every fact `conditions.FACTS` reads; birth
dates on, just before and just after a birthday on the as-of date, on 29 February, anywhere) and
random rule trees (all / any / not over every fact kind and operator), and checks that

- the database (`conditions.to_q` as a filter, and a whole policy through
  `policy_sql.outcome_query`, the statement evaluation stores) and
- Python (`conditions.holds`, and `selectors.explain_senior` over the default policy)

decide every senior alike. Each example inserts its seniors in one `bulk_create` and compares
them all in one query, inside a savepoint rolled back at the end, so 500 examples stay quick.
"""

import datetime as dt
import json

import pytest
from django.db import connection, transaction
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eligibility import conditions, policy_sql
from eligibility.conditions import FACTS, born_on_or_before
from eligibility.models import Determination, Policy, PolicyRule, Senior, Tier, TierOverride
from eligibility.selectors import explain_senior
from eligibility.services import evaluate_eligibility
from tests.factories import make_id_card_number

FLAG_FACTS = [name for name, fact in FACTS.items() if fact.kind == "flag"]
CHOICE_FACTS = [name for name, fact in FACTS.items() if fact.kind == "choice"]
ACTIVE = Senior.Status.ACTIVE
CARE_ORDER = ("A", "B", "C")

# --- Random seniors --------------------------------------------------------------------------------

AS_OF_DATES = st.one_of(
    st.sampled_from(
        [
            dt.date(2028, 2, 29),
            dt.date(2028, 2, 28),
            dt.date(2028, 3, 1),
            dt.date(2027, 2, 28),
            dt.date(2027, 3, 1),
            dt.date(2026, 12, 1),
            dt.date(2026, 12, 31),
            dt.date(2025, 1, 1),
        ]
    ),
    st.dates(dt.date(2025, 1, 1), dt.date(2030, 12, 31)),
)
AGES_NEAR_RULES = st.one_of(st.integers(55, 105), st.sampled_from([0, 1, 60, 70, 80, 100, 149, 150]))


def birth_dates(as_of: dt.date):
    """Birthdays on the as-of date and a day either side, 29 February of leap years, anywhere."""
    around_a_birthday = st.builds(
        lambda years, shift: born_on_or_before(as_of, years) + dt.timedelta(days=shift),
        AGES_NEAR_RULES.filter(lambda years: 50 <= years <= 105),
        st.sampled_from([-1, 0, 1]),
    )
    leap_days = st.sampled_from(range(1920, 1977, 4)).map(lambda year: dt.date(year, 2, 29))
    anywhere = st.dates(dt.date(as_of.year - 110, 1, 1), dt.date(as_of.year - 50, 12, 31))
    return st.one_of(around_a_birthday, leap_days, anywhere)


def seniors_of(as_of: dt.date, *, statuses=(ACTIVE, ACTIVE, ACTIVE, Senior.Status.MOVED_AWAY)):
    return st.fixed_dictionaries(
        {
            "birth_date": birth_dates(as_of),
            "sex": st.sampled_from(list(FACTS["sex"].choices)),
            "living_arrangement": st.sampled_from(list(FACTS["living_arrangement"].choices)),
            "self_care": st.sampled_from(list(FACTS["self_care"].choices)),
            "status": st.sampled_from(statuses),
            **{name: st.booleans() for name in FLAG_FACTS},
        }
    )


@st.composite
def registries(draw, *, max_size=10):
    """(as_of, [facts of each senior])."""
    as_of = draw(AS_OF_DATES)
    return as_of, draw(st.lists(seniors_of(as_of), min_size=1, max_size=max_size))


def insert_seniors(people: list[dict], community) -> list[Senior]:
    """The seniors in one statement, read back as the database holds them."""
    Senior.objects.bulk_create(
        Senior(
            id_card_number=make_id_card_number(birth_date=person["birth_date"], serial=i),
            name=f"随机{i}",
            community=community,
            status_date=dt.date(2020, 1, 1),
            **person,
        )
        for i, person in enumerate(people)
    )
    return list(Senior.objects.filter(community=community).order_by("pk"))


# --- Random rule trees -----------------------------------------------------------------------------

age_leaves = st.builds(
    lambda op, years: {"fact": "age", "op": op, "value": years},
    st.sampled_from(conditions.AGE_OPS),
    AGES_NEAR_RULES,
)
flag_leaves = st.builds(
    lambda fact, value: {"fact": fact, "op": "is", "value": value},
    st.sampled_from(FLAG_FACTS),
    st.booleans(),
)
choice_leaves = st.sampled_from(CHOICE_FACTS).flatmap(
    lambda fact: st.builds(
        lambda op, values: {"fact": fact, "op": op, "value": values},
        st.sampled_from(conditions.CHOICE_OPS),
        # duplicates and any order: validation normalises them
        st.lists(st.sampled_from(list(FACTS[fact].choices)), min_size=1, max_size=4),
    )
)
leaves = st.one_of(age_leaves, flag_leaves, choice_leaves)


def _trees(levels: int):
    level = leaves
    for _ in range(levels):
        below = level
        level = st.one_of(
            leaves,
            st.lists(below, min_size=1, max_size=3).map(lambda members: {"all": members}),
            st.lists(below, min_size=1, max_size=3).map(lambda members: {"any": members}),
            below.map(lambda member: {"not": member}),
        )
    return level


trees = _trees(3)  # at most 4 levels and 40 parts: always within the validator's limits


# --- (1) a condition: the query filter and Python -------------------------------------------------


@pytest.fixture
def community(db):
    from tests.factories import make_community

    return make_community("H")


def outcome_rows(policy: Policy, as_of: dt.date, senior_ids: list[int]) -> dict:
    """{senior_id: (tier_id, care, matched codes)} from the statement evaluation stores."""
    sql, params = policy_sql.outcome_query(policy, as_of, senior_ids=senior_ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        senior_id: (tier_id, care, matched if isinstance(matched, list) else json.loads(matched))
        for senior_id, tier_id, care, matched, _override in rows
    }


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(registry=registries(), tier_rule=trees, care_rule=trees, population=st.none() | trees)
def test_the_database_and_python_decide_every_senior_alike(
    community, registry, tier_rule, care_rule, population
):
    as_of, people = registry
    # Given well-formed conditions (the validator accepts each, normalised)
    tier_rule, care_rule = conditions.validate(tier_rule), conditions.validate(care_rule)
    population = conditions.validate(population) if population is not None else {}

    with transaction.atomic():
        # And a registry of random seniors
        seniors = insert_seniors(people, community)
        ids = [senior.pk for senior in seniors]

        # When the database filters them by the condition, and Python runs it over each of them
        in_sql = set(
            Senior.objects.filter(pk__in=ids)
            .filter(conditions.to_q(tier_rule, as_of))
            .values_list("pk", flat=True)
        )
        in_python = {senior.pk for senior in seniors if conditions.holds(tier_rule, senior, as_of)}

        # Then they name the same seniors
        assert in_sql == in_python, [
            (senior.birth_date, conditions.age_on(senior.birth_date, as_of))
            for senior in seniors
            if (senior.pk in in_sql) != (senior.pk in in_python)
        ]

        # Given a policy (as a draft) with that population, a tier rule and a care-visit rule
        policy = Policy.objects.create(code="agreement", name="随机政策", population=population)
        tier = Tier.objects.create(
            policy=policy,
            code="t1",
            name="一档",
            rank=1,
            government_share_rate="1.0000",
            monthly_face_value=Money("100.00", "CNY"),
        )
        PolicyRule.objects.bulk_create(
            [
                PolicyRule(policy=policy, code="z_tier", label="档", tier=tier, condition=tier_rule),
                PolicyRule(
                    policy=policy, code="m_care", label="探访", care_visit_class="B", condition=care_rule
                ),
            ]
        )

        # When the statement that evaluation stores computes every senior's outcome
        outcomes = outcome_rows(policy, as_of, ids)

        # Then it is what Python gives: active seniors in the population who match a rule, with
        # the tier, the class and the matched codes in code order
        expected = {}
        for senior in seniors:
            if senior.status != ACTIVE or (population and not conditions.holds(population, senior, as_of)):
                continue
            tiered = conditions.holds(tier_rule, senior, as_of)
            cared = conditions.holds(care_rule, senior, as_of)
            if tiered or cared:
                codes = [code for code, met in (("m_care", cared), ("z_tier", tiered)) if met]
                expected[senior.pk] = (tier.pk if tiered else None, "B" if cared else "", codes)
        assert outcomes == expected

        transaction.set_rollback(True)


# --- (2) the default policy: the stored determination and explain_senior -------------------------

OVERRIDE_CODES = ["subsidized", "low_fee", "paid", "not_a_tier_of_the_policy"]
overrides = st.none() | st.fixed_dictionaries(
    {
        "tier_code": st.sampled_from(OVERRIDE_CODES),
        "starts": st.integers(-40, 5),  # days from as_of
        "days": st.integers(0, 60),
        "ended": st.booleans(),
    }
)


@st.composite
def registries_with_overrides(draw):
    as_of = draw(AS_OF_DATES)
    people = draw(st.lists(seniors_of(as_of), min_size=1, max_size=8))
    return as_of, people, draw(st.lists(overrides, min_size=len(people), max_size=len(people)))


def expected_outcome(policy, rules, senior, as_of, override):
    """What DESIGN.md §4.1/§4.4 say, from conditions.holds alone: (tier, class, matched codes, override)."""
    if not conditions.holds(policy.population, senior, as_of):
        matched = []
    else:
        matched = sorted(rule.code for rule in rules if conditions.holds(rule.condition, senior, as_of))
    granted = [rule.tier for rule in rules if rule.code in matched and rule.tier_id]
    tier = min(granted, key=lambda t: t.rank) if granted else None
    classes = {rule.care_visit_class for rule in rules if rule.code in matched and not rule.tier_id}
    care = next((c for c in CARE_ORDER if c in classes), "")
    tiers = {t.code: t for t in policy.tiers.all()}
    applies = (
        override is not None
        and override.ended_at is None
        and override.starts_on <= as_of <= override.expires_on
        and override.tier_code in tiers
    )
    if applies:
        return tiers[override.tier_code], care, matched, override
    return tier, care, matched, None


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(registry=registries_with_overrides())
def test_the_stored_determination_is_what_explain_senior_says(default_policy, worker, community, registry):
    as_of, people, override_specs = registry
    rules = list(default_policy.rules.select_related("tier"))
    with transaction.atomic():
        # Given random seniors, some with a manual tier (open or ended, current or not)
        seniors = insert_seniors(people, community)
        TierOverride.objects.bulk_create(
            TierOverride(
                senior=senior,
                tier_code=spec["tier_code"],
                reason="随机",
                starts_on=as_of + dt.timedelta(days=spec["starts"]),
                expires_on=as_of + dt.timedelta(days=spec["starts"] + spec["days"]),
                created_by=worker,
                ended_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC) if spec["ended"] else None,
            )
            for senior, spec in zip(seniors, override_specs, strict=True)
            if spec is not None
        )
        override_of = {o.senior_id: o for o in TierOverride.objects.filter(senior__in=seniors)}

        # When the registry is evaluated under the default policy
        evaluate_eligibility(as_of=as_of)
        stored = {d.senior_id: d for d in Determination.objects.filter(is_current=True, senior__in=seniors)}

        for senior in seniors:
            tier, care, matched, override = expected_outcome(
                default_policy, rules, senior, as_of, override_of.get(senior.pk)
            )
            why = explain_senior(senior=senior, as_of=as_of)
            determination = stored.get(senior.pk)

            # Then explain_senior gives the most favourable matching tier (or the manual one),
            # the most intensive class, and the rules that matched
            assert (why.tier, why.care_class, why.override) == (tier, care, override)
            if why.in_population:
                assert sorted(verdict.rule.code for verdict in why.matched) == matched

            # And the stored determination says the same (none for those who left, or with nothing)
            if senior.status != ACTIVE or (tier is None and not care):
                assert determination is None
                continue
            assert determination is not None
            assert (
                determination.policy_id,
                determination.tier_id,
                determination.care_visit_class,
                determination.matched_rules,
                determination.override_id,
                determination.as_of,
            ) == (
                default_policy.pk,
                tier.pk if tier else None,
                care,
                matched,
                override.pk if override else None,
                as_of,
            )

        transaction.set_rollback(True)
