"""The default policy of DESIGN.md §4.1, §4.2 and §4.4, as data.

Loaded by a data migration (so a production install has a policy in force after `migrate`) and
by `services.ensure_default_policy` (tests, the demo). `create_default_policy` takes the model
classes as parameters so that the migration can pass its historical ones. Nothing here is
consulted at evaluation time: once loaded, the policy is rows in the database, and a change is
a new draft made on the policies page.
"""

import datetime as dt
from decimal import Decimal

CODE = "default"
NAME = "居家养老服务默认政策"
NAME_EN = "Default home-care policy"
EFFECTIVE_FROM = dt.date(2025, 1, 1)


def age(op: str, years: int) -> dict:
    return {"fact": "age", "op": op, "value": years}


def yes(fact: str) -> dict:
    return {"fact": fact, "op": "is", "value": True}


def no(fact: str) -> dict:
    return {"fact": fact, "op": "is", "value": False}


def one_of(fact: str, *values: str) -> dict:
    return {"fact": fact, "op": "in", "value": list(values)}


def all_of(*conditions: dict) -> dict:
    return {"all": list(conditions)}


DISABLED = one_of("self_care", "disabled")
# Empty-nest (空巢): living without children (alone, or as a couple), the children not in the city.
EMPTY_NEST = all_of(one_of("living_arrangement", "alone", "empty_nest"), no("children_in_city"))
ALONE_EMPTY_OR_LEFT = one_of("living_arrangement", "alone", "empty_nest", "left_behind")

# Who the policy covers at all: everyone below is 60+ (and registered, i.e. resident).
POPULATION = age(">=", 60)

TIERS = [
    # code, name, English name, rank, government share rate, monthly face value
    ("subsidized", "无偿", "Subsidized", 1, Decimal("1.0000"), Decimal("300.00")),
    ("low_fee", "低偿", "Low fee", 2, Decimal("0.7000"), Decimal("200.00")),
    ("paid", "有偿", "Paid", 3, Decimal("0.0000"), Decimal("0.00")),
]

# code, zh-Hans label, English label, tier code or care-visit class, condition
TIER_RULES = [
    (
        "subsidized_70_dependent_no_children_dibao",
        "70岁以上、不能自理、无子女在本市且享受低保",
        "70+, cannot care for self, no children in the city, receives 低保",
        "subsidized",
        all_of(age(">=", 70), DISABLED, no("children_in_city"), yes("receives_dibao")),
    ),
    (
        "subsidized_special_care",
        "重点优抚对象",
        "Key special-care recipient",
        "subsidized",
        yes("special_care_recipient"),
    ),
    ("subsidized_three_no", "三无/特困人员", "Three-no / extreme hardship", "subsidized", yes("three_no")),
    ("subsidized_five_old", "五老人员", "Revolutionary five-old", "subsidized", yes("five_old")),
    ("subsidized_centenarian", "百岁老人", "Aged 100 or over", "subsidized", age(">=", 100)),
    (
        "low_fee_empty_nest_dependent",
        "空巢且不能自理",
        "Empty-nest and cannot care for self",
        "low_fee",
        all_of(EMPTY_NEST, DISABLED),
    ),
    (
        "low_fee_80_empty_nest_no_assistance",
        "80岁以上空巢且未享受民政救助",
        "80+, empty-nest, no civil-affairs assistance",
        "low_fee",
        all_of(age(">=", 80), EMPTY_NEST, no("receives_civil_affairs_assistance")),
    ),
    (
        "low_fee_hardship",
        "经社区评估有一定收入但确有困难",
        "Assessed by the community: some income but real hardship",
        "low_fee",
        yes("hardship_assessed"),
    ),
    ("paid_resident", "60岁以上常住老人", "Resident aged 60 or over", "paid", age(">=", 60)),
]

CARE_RULES = [
    ("care_a_disabled", "失能", "Disabled", "A", DISABLED),
    (
        "care_a_80_alone",
        "80岁以上独居、空巢或留守",
        "80+ living alone, empty-nest or left-behind",
        "A",
        all_of(age(">=", 80), ALONE_EMPTY_OR_LEFT),
    ),
    (
        "care_a_dibao_alone",
        "低保家庭且独居、空巢或留守",
        "低保 family, living alone, empty-nest or left-behind",
        "A",
        all_of(yes("receives_dibao"), ALONE_EMPTY_OR_LEFT),
    ),
    (
        "care_a_family_planning_alone",
        "计划生育特殊家庭且独居",
        "Family-planning special family, living alone",
        "A",
        all_of(yes("family_planning_special"), one_of("living_arrangement", "alone")),
    ),
    (
        "care_b_severely_disabled_alone",
        "60至79岁重度失能且独居",
        "60–79, severely dependent and living alone",
        "B",
        all_of(age(">=", 60), age("<", 80), yes("severely_disabled"), one_of("living_arrangement", "alone")),
    ),
    (
        "care_b_couple_one_disabled",
        "60至79岁夫妻一方失能或失智",
        "60–79 couple, one disabled or demented",
        "B",
        all_of(age(">=", 60), age("<", 80), yes("couple_one_disabled")),
    ),
    (
        "care_b_cares_for_child",
        "长期照顾失能或失智子女",
        "Caring long-term for a disabled or demented child",
        "B",
        yes("cares_for_disabled_child"),
    ),
    (
        "care_c_special_difficulty",
        "其他特殊困难老人",
        "Other special-difficulty senior",
        "C",
        yes("special_difficulty"),
    ),
]

RULES = {
    code: (label, label_en, grants, condition)
    for code, label, label_en, grants, condition in TIER_RULES + CARE_RULES
}


def create_default_policy(
    policy_model, tier_model, rule_model, *, status="active", effective_from=EFFECTIVE_FROM
):
    """Create the default policy with its tiers and rules, then publish it; returns it. (The
    database accepts tiers and rules only into a draft.)"""
    policy = policy_model.objects.create(
        code=CODE,
        version=1,
        name=NAME,
        name_en=NAME_EN,
        status="draft",
        effective_from=effective_from,
        population=POPULATION,
    )
    tiers = {}
    for code, name, name_en, rank, rate, face_value in TIERS:
        tiers[code] = tier_model.objects.create(
            policy=policy,
            code=code,
            name=name,
            name_en=name_en,
            rank=rank,
            government_share_rate=rate,
            monthly_face_value=face_value,
            monthly_face_value_currency="CNY",
        )
    rule_model.objects.bulk_create(
        rule_model(
            policy=policy,
            code=code,
            label=label,
            label_en=label_en,
            tier=tiers.get(grants),
            care_visit_class="" if grants in tiers else grants,
            condition=condition,
        )
        for code, (label, label_en, grants, condition) in RULES.items()
    )
    policy.status = status
    policy.save(update_fields=["status"])
    return policy
