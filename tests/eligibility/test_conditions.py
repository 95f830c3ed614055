"""The condition language of policy rules (eligibility.conditions): what it refuses and where,
how it normalises, how it reads in plain words, why a senior met or missed a rule, and ages
around birthdays and 29 February."""

import datetime as dt

import pytest
from django.utils import translation
from hypothesis import given, settings
from hypothesis import strategies as st

from eligibility import conditions, default_policy
from eligibility.conditions import ConditionError, age_on, born_on_or_before, describe, describe_check
from eligibility.models import Senior
from eligibility.selectors import explain_senior
from eligibility.services import copy_policy, delete_rule, save_rule
from tests.factories import SeniorFactory, make_community


def age(op, value):
    return {"fact": "age", "op": op, "value": value}


def flag(fact, value=True):
    return {"fact": fact, "op": "is", "value": value}


def one_of(fact, *values, op="in"):
    return {"fact": fact, "op": op, "value": list(values)}


AGED_80 = age(">=", 80)
ALONE = one_of("living_arrangement", "alone")


def facts(**values) -> dict:
    """A senior's facts as the evaluators read them (every field the rules may read)."""
    base = {
        "birth_date": dt.date(1948, 6, 1),
        "sex": "F",
        "living_arrangement": "with_family",
        "self_care": "independent",
    }
    base.update({name: False for name, fact in conditions.FACTS.items() if fact.kind == "flag"})
    base["children_in_city"] = True
    base.update(values)
    return base


AS_OF = dt.date(2026, 12, 1)
AGED_78 = {"birth_date": dt.date(1948, 6, 1)}  # 78 on AS_OF


# --- Validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "path", "words"),
    [
        # the shape of a node
        ([AGED_80], "", "object"),
        ("age >= 80", "", "object"),
        (None, "", "object"),
        ({}, "", "exactly the keys"),
        ({"all": []}, "", "non-empty list"),
        ({"any": []}, "", "non-empty list"),
        ({"any": AGED_80}, "", "non-empty list"),
        ({"all": [AGED_80], "any": [ALONE]}, "", "no other keys"),
        ({"not": AGED_80, "fact": "age"}, "", "no other keys"),
        ({"not": [AGED_80]}, "not", "object"),
        ({"not": {"all": []}}, "not", "non-empty list"),
        ({"all": [AGED_80, "alone"]}, "all[1]", "object"),
        ({"fact": "age", "op": ">="}, "", "exactly the keys"),
        ({"fact": "age", "op": ">=", "value": 80, "label": "x"}, "", "exactly the keys"),
        # unknown facts and operators
        ({"any": [AGED_80, {"fact": "income", "op": ">=", "value": 1}]}, "any[1]", "Unknown fact"),
        ({"fact": ["age"], "op": ">=", "value": 80}, "", "Unknown fact"),
        ({"fact": "birth_date", "op": ">=", "value": 80}, "", "Unknown fact"),
        ({"all": [{"not": age("=>", 80)}]}, "all[0].not", "compared with one of"),
        (age("is", 80), "", "compared with one of"),
        (age("in", [80]), "", "compared with one of"),
        ({"fact": "three_no", "op": "==", "value": True}, "", "compared with one of"),
        ({"fact": "living_arrangement", "op": "is", "value": "alone"}, "", "compared with one of"),
        # values
        ({"any": [AGED_80, age(">=", "80")]}, "any[1].value", "whole number"),
        ({"any": [AGED_80, age(">=", True)]}, "any[1].value", "whole number"),
        (age("<", False), "value", "whole number"),
        (age(">=", 80.0), "value", "whole number"),
        (age(">=", 79.5), "value", "whole number"),
        (age(">=", -1), "value", "whole number"),
        (age(">=", conditions.MAX_AGE + 1), "value", "whole number"),
        (age(">=", None), "value", "whole number"),
        (flag("three_no", 1), "value", "true or false"),
        (flag("three_no", "true"), "value", "true or false"),
        (flag("three_no", None), "value", "true or false"),
        ({"fact": "living_arrangement", "op": "in", "value": "alone"}, "value", "non-empty list"),
        ({"fact": "living_arrangement", "op": "in", "value": []}, "value", "non-empty list"),
        ({"fact": "living_arrangement", "op": "not_in", "value": [1]}, "value", "non-empty list"),
        (one_of("living_arrangement", "alone", "castle"), "value", "“castle” is not a value"),
        (one_of("sex", "X"), "value", "“X” is not a value of sex"),
        (one_of("self_care", "Disabled"), "value", "is not a value of self_care"),
        # deep inside
        (
            {"all": [AGED_80, {"any": [ALONE, {"not": flag("receives_dibao", "yes")}]}]},
            "all[1].any[1].not.value",
            "true or false",
        ),
    ],
)
def test_a_malformed_condition_is_refused_naming_where(condition, path, words):
    # When a malformed condition is validated on an English page
    refusal = refusal_in_english(condition)

    # Then the refusal names the part that is wrong and says what is wrong with it
    assert refusal.path == path
    assert words in str(refusal.message)
    assert refusal.detail.startswith(f"{path or 'condition'}: ")


def refusal_in_english(condition) -> ConditionError:
    """The refusal of `condition` as an English page gets it (its message evaluated there)."""
    with translation.override("en"), pytest.raises(ConditionError) as refusal:
        try:
            conditions.validate(condition)
        except ConditionError as error:
            error.message = str(error.message)
            raise
    return refusal.value


def test_a_refusal_reads_in_chinese_on_a_chinese_page():
    # When a condition with an age in words is validated on a zh-Hans page
    with translation.override("zh-hans"), pytest.raises(ConditionError) as refusal:
        conditions.validate({"any": [AGED_80, age(">=", "八十")]})

    # Then the refusal names the place and says what is wrong in Chinese
    assert refusal.value.path == "any[1].value"
    message = str(refusal.value.message)
    assert any("\u4e00" <= char <= "\u9fff" for char in message), message


def nested_nots(levels: int) -> dict:
    condition = AGED_80
    for _ in range(levels):
        condition = {"not": condition}
    return condition


def test_a_condition_nests_at_most_eight_levels():
    # Given a comparison under 7 "not"s (8 levels) and one under 8 (9 levels)
    deepest = nested_nots(conditions.MAX_DEPTH - 1)
    too_deep = nested_nots(conditions.MAX_DEPTH)

    # Then the first is accepted and the second refused at the comparison that is too deep
    assert conditions.validate(deepest) == deepest
    refusal = refusal_in_english(too_deep)
    assert refusal.path == ".".join(["not"] * conditions.MAX_DEPTH)
    assert "levels deep" in str(refusal.message)


def test_a_very_deep_condition_is_refused_without_exhausting_the_stack():
    # Given a condition nested ten thousand levels deep (a hostile upload)
    # Then it is refused as too deep, not with a RecursionError
    assert "levels deep" in str(refusal_in_english(nested_nots(10_000)).message)


def test_a_condition_has_at_most_a_hundred_parts():
    # Given an "all" of 99 comparisons (100 parts) and one of 100 comparisons (101 parts)
    largest = {"all": [age(">=", 60 + i % 40) for i in range(conditions.MAX_NODES - 1)]}
    too_large = {"all": [age(">=", 60 + i % 40) for i in range(conditions.MAX_NODES)]}

    # Then the first is accepted and the second refused at its 101st part
    assert conditions.validate(largest) == largest
    refusal = refusal_in_english(too_large)
    assert refusal.path == f"all[{conditions.MAX_NODES - 1}]"
    assert "at most" in str(refusal.message)


@pytest.mark.parametrize("value", [0, 60, conditions.MAX_AGE])
def test_the_whole_range_of_ages_is_accepted(value):
    assert conditions.validate(age("<", value)) == age("<", value)


# --- Normalisation --------------------------------------------------------------------------------


def test_validation_normalises_lists_of_values_and_leaves_the_input_alone():
    # Given a condition listing values out of order and twice
    given_condition = {
        "any": [
            one_of("living_arrangement", "left_behind", "alone", "left_behind"),
            {"not": one_of("self_care", "disabled", "partial", op="not_in")},
        ]
    }
    original = repr(given_condition)

    # When it is validated
    normalised = conditions.validate(given_condition)

    # Then each list holds each value once, in the order the fact lists them; the input is untouched
    assert normalised == {
        "any": [
            one_of("living_arrangement", "alone", "left_behind"),
            {"not": one_of("self_care", "partial", "disabled", op="not_in")},
        ]
    }
    assert repr(given_condition) == original
    # And normalising again changes nothing
    assert conditions.validate(normalised) == normalised


def test_every_rule_of_the_default_policy_is_valid_and_already_normal():
    for code, (_label, _label_en, _grants, condition) in default_policy.RULES.items():
        assert conditions.validate(condition) == condition, code
    assert conditions.validate(default_policy.POPULATION) == default_policy.POPULATION


# --- Plain words ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "zh", "en"),
    [
        ({"all": [AGED_80, ALONE]}, "年满80周岁 且 独居", "aged 80 or over and living alone"),
        (
            {"all": [AGED_80, {"any": [ALONE, one_of("living_arrangement", "empty_nest")]}]},
            "年满80周岁 且 （独居 或 空巢）",
            "aged 80 or over and (living alone or empty-nest)",
        ),
        (one_of("living_arrangement", "alone", "empty_nest"), "独居或空巢", "living alone or empty-nest"),
        (
            one_of("self_care", "disabled", op="not_in"),
            "非失能",
            "not unable to care for self",
        ),
        ({"not": flag("receives_dibao")}, "并非（享受低保）", "not (receives 低保)"),
        ({"any": [flag("children_in_city", False)]}, "子女不在本市", "no children in the city"),
        (age(">", 79), "年满80周岁", "aged over 79"),
        (age("<", 80), "未满80周岁", "under 80"),
        (age("<=", 79), "未满80周岁", "aged 79 or under"),
        (age("==", 80), "80周岁", "aged 80"),
        (age("!=", 80), "不是80周岁", "not aged 80"),
        (one_of("sex", "M"), "男性", "male"),
    ],
)
def test_a_condition_in_plain_words(condition, zh, en):
    with translation.override("zh-hans"):
        assert describe(condition) == zh
    with translation.override("en"):
        assert describe(condition) == en


def test_a_default_rule_in_plain_words():
    # Given the default rule "80+, empty-nest, no civil-affairs assistance"
    condition = default_policy.RULES["low_fee_80_empty_nest_no_assistance"][3]

    # Then it reads as the bureau wrote it, the empty-nest part in brackets
    with translation.override("zh-hans"):
        assert describe(condition) == "年满80周岁 且 （独居或空巢 且 子女不在本市） 且 未享受民政救助"
    with translation.override("en"):
        assert describe(condition) == (
            "aged 80 or over and (living alone or empty-nest and no children in the city) "
            "and receives no civil-affairs assistance"
        )


def checks_of(condition, senior, *, met=False) -> list[str]:
    outcome = conditions.explain(condition, senior, AS_OF)
    return [describe_check(check) for check in (outcome.met if met else outcome.failed)]


def test_a_failed_rule_says_which_comparisons_were_missed_with_the_seniors_own_values():
    # Given a 78-year-old living with family, children in the city
    senior = facts(**AGED_78)
    rule = default_policy.RULES["low_fee_80_empty_nest_no_assistance"][3]

    # When the 80+ empty-nest rule is explained
    assert not conditions.holds(rule, senior, AS_OF)

    # Then each missed comparison is given with her own value, and nothing that was met
    with translation.override("zh-hans"):
        assert checks_of(rule, senior) == ["年龄 78 < 80", "居住情况：与家人同住", "子女在本市"]
    with translation.override("en"):
        assert checks_of(rule, senior) == [
            "age 78 < 80",
            "living arrangement: living with family",
            "has children in the city",
        ]


def test_a_met_rule_says_which_comparisons_decided_it():
    # Given an 82-year-old living alone
    senior = facts(birth_date=dt.date(1944, 1, 1), living_arrangement="alone")
    rule = {"any": [{"all": [AGED_80, ALONE]}, flag("receives_dibao")]}

    # Then the rule holds because of the alternative she meets, not the one she misses
    with translation.override("zh-hans"):
        assert checks_of(rule, senior, met=True) == ["年龄 82 ≥ 80", "居住情况：独居"]
        assert checks_of(rule, senior) == []


@pytest.mark.parametrize(
    ("leaf", "zh", "en"),
    [
        (age(">=", 80), "年龄 78 < 80", "age 78 < 80"),
        (age("<", 80), "年龄 78 < 80", "age 78 < 80"),
        (age(">", 78), "年龄 78 ≤ 78", "age 78 ≤ 78"),
        (age("<=", 77), "年龄 78 > 77", "age 78 > 77"),
        (age("==", 80), "年龄 78 ≠ 80", "age 78 ≠ 80"),
        (age("!=", 80), "年龄 78 ≠ 80", "age 78 ≠ 80"),
        (age("<=", 78), "年龄 78 ≤ 78", "age 78 ≤ 78"),
        (age("==", 78), "年龄 78 = 78", "age 78 = 78"),
        (flag("receives_dibao"), "不享受低保", "does not receive 低保"),
        (flag("children_in_city", False), "子女在本市", "has children in the city"),
        (one_of("self_care", "disabled"), "自理能力：能自理", "self-care ability: able to care for self"),
    ],
)
def test_one_comparison_with_the_seniors_value(leaf, zh, en):
    # Given a 78-year-old who cares for herself, receives no 低保, with children in the city
    check = {"leaf": leaf, "actual": conditions.fact_value(facts(**AGED_78), leaf["fact"], AS_OF)}

    # Then the comparison reads with her own value, the operator saying how it came out
    with translation.override("zh-hans"):
        assert describe_check(check) == zh
    with translation.override("en"):
        assert describe_check(check) == en


def test_what_made_the_inner_part_of_a_not_hold_is_why_the_not_failed():
    # Given a senior who receives 低保
    senior = facts(receives_dibao=True)
    condition = {"not": {"all": [flag("receives_dibao"), flag("three_no", False)]}}

    # Then "not (低保 and not three-no)" fails, and the reasons are the facts that made the inside hold
    assert not conditions.holds(condition, senior, AS_OF)
    with translation.override("zh-hans"):
        assert checks_of(condition, senior) == ["享受低保", "非三无/特困人员"]


# --- Shortfall: how far a senior is from a rule --------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "senior", "missing"),
    [
        (AGED_80, facts(birth_date=dt.date(1940, 1, 1)), 0),
        (AGED_80, facts(**AGED_78), 1),
        ({"all": [AGED_80, ALONE, flag("receives_dibao")]}, facts(**AGED_78), 3),
        ({"all": [AGED_80, ALONE, flag("receives_dibao")]}, facts(**AGED_78, living_arrangement="alone"), 2),
        # any: the cheapest alternative
        ({"any": [{"all": [AGED_80, ALONE]}, flag("three_no")]}, facts(**AGED_78), 1),
        ({"any": [{"all": [AGED_80, ALONE]}, {"all": [flag("three_no"), flag("five_old")]}]}, facts(), 2),
        # not(all): breaking one part is enough; not(any): every part must break
        (
            {"not": {"all": [ALONE, flag("receives_dibao")]}},
            facts(living_arrangement="alone", receives_dibao=True),
            1,
        ),
        (
            {"not": {"any": [ALONE, flag("receives_dibao")]}},
            facts(living_arrangement="alone", receives_dibao=True),
            2,
        ),
        ({"not": {"not": AGED_80}}, facts(**AGED_78), 1),
    ],
)
def test_shortfall_counts_the_comparisons_a_senior_misses(condition, senior, missing):
    assert conditions.shortfall(condition, senior, AS_OF) == missing
    assert conditions.holds(condition, senior, AS_OF) is (missing == 0)


FLAGS = [name for name, fact in conditions.FACTS.items() if fact.kind == "flag"]
leaves = st.one_of(
    st.builds(flag, st.sampled_from(FLAGS), st.booleans()),
    st.builds(age, st.sampled_from(conditions.AGE_OPS), st.integers(60, 100)),
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda members: {"all": members}),
        st.lists(children, min_size=1, max_size=3).map(lambda members: {"any": members}),
        children.map(lambda member: {"not": member}),
    ),
    max_leaves=10,
)
senior_facts = st.builds(
    lambda born, values: facts(birth_date=born, **dict(zip(FLAGS, values, strict=True))),
    st.dates(dt.date(1920, 1, 1), dt.date(1966, 12, 1)),
    st.lists(st.booleans(), min_size=len(FLAGS), max_size=len(FLAGS)),
)


def count_leaves(condition) -> int:
    if "not" in condition:
        return count_leaves(condition["not"])
    for key in ("all", "any"):
        if key in condition:
            return sum(count_leaves(member) for member in condition[key])
    return 1


@settings(max_examples=300, deadline=None)
@given(condition=trees, senior=senior_facts)
def test_a_senior_misses_nothing_exactly_when_the_condition_holds(condition, senior):
    # Given any condition and any senior
    missing = conditions.shortfall(condition, senior, AS_OF)
    outcome = conditions.explain(condition, senior, AS_OF)

    # Then nothing is missing exactly when it holds, and never more than its comparisons
    assert (missing == 0) is outcome.holds
    assert 0 <= missing <= count_leaves(condition)
    # And a failure names at least as many missed comparisons as the cheapest way to meet it,
    # a success at least one comparison that decided it
    if outcome.holds:
        assert outcome.met and not outcome.failed
    else:
        assert len(outcome.failed) >= missing and not outcome.met


# --- The nearest rule not met (the worker's "why" panel) -----------------------------------------


@pytest.fixture
def flags_policy(default_policy, bureau):
    """A draft whose tiers are reached by flags only: gold (the subsidized tier, rank 1) needs
    three of them, silver (low fee) two or one, bronze (paid) anyone aged 60 or over."""
    draft = copy_policy(policy=default_policy, by=bureau, code="flags")
    for rule in draft.rules.filter(tier__isnull=False):
        delete_rule(rule=rule, by=bureau)
    tiers = {tier.code: tier for tier in draft.tiers.all()}
    gold, silver, bronze = tiers["subsidized"], tiers["low_fee"], tiers["paid"]
    save_rule(
        policy=draft,
        by=bureau,
        code="gold",
        label="金",
        tier=gold,
        condition={"all": [flag("three_no"), flag("five_old"), flag("special_care_recipient")]},
    )
    save_rule(
        policy=draft,
        by=bureau,
        code="silver",
        label="银",
        tier=silver,
        condition={"all": [flag("hardship_assessed"), flag("receives_dibao")]},
    )
    save_rule(
        policy=draft, by=bureau, code="silver_single", label="银", tier=silver, condition=flag("five_old")
    )
    save_rule(policy=draft, by=bureau, code="bronze", label="铜", tier=bronze, condition=age(">=", 60))
    return draft


@pytest.mark.parametrize(
    ("senior_facts_", "tier", "nearest"),
    [
        # silver_single needs one change, gold three: the one needing fewest
        ({}, "paid", ["silver_single"]),
        # with hardship assessed, "silver" needs one change too: both, by code
        ({"hardship_assessed": True}, "paid", ["silver", "silver_single"]),
        # with three-no and special care, gold needs one more, as silver_single does: the next tier up
        ({"three_no": True, "special_care_recipient": True}, "paid", ["silver_single"]),
        # on silver, only gold is more favourable, however far
        ({"five_old": True}, "low_fee", ["gold"]),
        # on the best tier there is nothing nearer
        ({"three_no": True, "five_old": True, "special_care_recipient": True}, "subsidized", []),
    ],
)
def test_the_nearest_rules_not_met_are_of_the_next_better_tier_and_need_fewest_changes(
    flags_policy, senior_facts_, tier, nearest
):
    # Given a senior with these facts
    senior = SeniorFactory(community=make_community("N"), **senior_facts_)

    # When the flags policy is explained for her
    why = explain_senior(senior=senior, as_of=AS_OF, policy=flags_policy)

    # Then her tier, and the rules of a better tier she misses by fewest changes
    assert why.tier.code == tier
    assert [verdict.rule.code for verdict in why.nearest_rules] == nearest
    assert (why.nearest.rule.code if why.nearest else None) == (nearest[0] if nearest else None)


def test_a_78_year_old_empty_nester_is_shown_the_low_fee_rules_she_misses_by_one_fact(default_policy):
    # Given a 78-year-old empty-nester who cares for herself and receives no assistance (paid)
    senior = SeniorFactory(community=make_community("N"), **AGED_78, living_arrangement="empty_nest")
    senior.children_in_city = False
    senior.save()

    # When the default policy is explained for her
    why = explain_senior(senior=senior, as_of=AS_OF)

    # Then the nearest rules are the low-fee ones one fact away (not the subsidized ones, which are
    # as near but two tiers up), those missing no years first; the 80+ rule says by how much
    assert why.tier.code == "paid"
    assert [v.rule.code for v in why.nearest_rules] == [
        "low_fee_empty_nest_dependent",
        "low_fee_hardship",
        "low_fee_80_empty_nest_no_assistance",
    ]
    assert all(v.shortfall == 1 for v in why.nearest_rules)
    with translation.override("zh-hans"):
        assert [
            describe_check(c)
            for c in conditions.explain(why.nearest_rules[2].rule.condition, senior, AS_OF).failed
        ] == ["年龄 78 < 80"]


# --- Ages around birthdays and 29 February -------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "day", "years"),
    [
        (dt.date(1946, 12, 1), dt.date(2026, 11, 30), 79),
        (dt.date(1946, 12, 1), dt.date(2026, 12, 1), 80),
        (dt.date(1946, 12, 1), dt.date(2026, 12, 2), 80),
        (dt.date(1946, 12, 31), dt.date(2026, 1, 1), 79),
        # a 29 February birthday comes on 1 March in common years
        (dt.date(1948, 2, 29), dt.date(2027, 2, 28), 78),
        (dt.date(1948, 2, 29), dt.date(2027, 3, 1), 79),
        (dt.date(1948, 2, 29), dt.date(2028, 2, 28), 79),
        (dt.date(1948, 2, 29), dt.date(2028, 2, 29), 80),
        # on 29 February itself, a 28 February or 1 March birthday
        (dt.date(1948, 2, 28), dt.date(2028, 2, 29), 80),
        (dt.date(1948, 3, 1), dt.date(2028, 2, 29), 79),
        (dt.date(1949, 2, 28), dt.date(2028, 2, 29), 79),
        (dt.date(1949, 3, 1), dt.date(2028, 2, 29), 78),
    ],
)
def test_age_in_whole_years(born, day, years):
    assert age_on(born, day) == years


@pytest.mark.parametrize(
    ("day", "years", "latest"),
    [
        (dt.date(2026, 12, 1), 80, dt.date(1946, 12, 1)),
        (dt.date(2028, 2, 29), 80, dt.date(1948, 2, 29)),  # 1948 is a leap year
        (dt.date(2028, 2, 29), 79, dt.date(1949, 2, 28)),  # 1949 is not
        (dt.date(2027, 3, 1), 79, dt.date(1948, 3, 1)),
    ],
)
def test_the_latest_birth_date_of_someone_at_least_so_old(day, years, latest):
    # Then that birth date is old enough and the day after is not
    assert born_on_or_before(day, years) == latest
    assert age_on(latest, day) >= years
    assert age_on(latest + dt.timedelta(days=1), day) < years


@pytest.mark.parametrize(
    "day",
    [
        dt.date(2027, 2, 27),
        dt.date(2027, 2, 28),
        dt.date(2027, 3, 1),
        dt.date(2028, 2, 28),
        dt.date(2028, 2, 29),
        dt.date(2028, 3, 1),
    ],
)
@pytest.mark.parametrize("op", conditions.AGE_OPS)
def test_sql_and_python_agree_on_ages_around_29_february(db, day, op):
    # Given seniors born on and around 29 February 1948 and 28 February/1 March 1949
    community = make_community("F")
    births = [
        dt.date(1948, 2, 28),
        dt.date(1948, 2, 29),
        dt.date(1948, 3, 1),
        dt.date(1949, 2, 28),
        dt.date(1949, 3, 1),
    ]
    seniors = [SeniorFactory(birth_date=born, community=community) for born in births]

    for years in (78, 79, 80):
        condition = age(op, years)
        # When the database and Python each decide who meets the comparison
        in_sql = set(Senior.objects.filter(conditions.to_q(condition, day)).values_list("pk", flat=True))
        in_python = {senior.pk for senior in seniors if conditions.holds(condition, senior, day)}

        # Then they name the same seniors
        assert in_sql == in_python, (op, years, day)
