"""The named conditions that policies refer to by code (DESIGN.md §4.1 and §4.4).

Each rule is a condition over a senior's registered facts as of a date, expressed as a query
filter so that a whole city is evaluated by the database, a rule at a time. A policy's
`PolicyRule` rows say which tier each rule grants; the care-visit classes are fixed by the
visiting programme and evaluated in order A, B, C.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Q
from django.utils.translation import gettext_lazy as _


def born_on_or_before(as_of: dt.date, years: int) -> dt.date:
    """The latest birth date of someone who is at least `years` old on `as_of`."""
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February in a non-leap target year
        return as_of.replace(year=as_of.year - years, day=28)


def aged_at_least(years: int, as_of: dt.date) -> Q:
    return Q(birth_date__lte=born_on_or_before(as_of, years))


def aged_under(years: int, as_of: dt.date) -> Q:
    return ~aged_at_least(years, as_of)


DISABLED = Q(self_care="disabled")
LIVES_ALONE = Q(living_arrangement="alone")
NO_CHILDREN_IN_CITY = Q(children_in_city=False)
# Empty-nest (空巢): living without children (alone, or as a couple), the children not in the city.
EMPTY_NEST = Q(living_arrangement__in=["alone", "empty_nest"]) & NO_CHILDREN_IN_CITY
ALONE_EMPTY_OR_LEFT = Q(living_arrangement__in=["alone", "empty_nest", "left_behind"])


@dataclass(frozen=True)
class Rule:
    code: str
    description: str
    condition: Callable[[dt.date], Q]


TIER_RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in [
        Rule(
            "subsidized_70_dependent_no_children_dibao",
            _("70+, cannot care for self, no children in the city, receives 低保"),
            lambda as_of: aged_at_least(70, as_of) & DISABLED & NO_CHILDREN_IN_CITY & Q(receives_dibao=True),
        ),
        Rule(
            "subsidized_special_care",
            _("Key special-care recipient (重点优抚对象)"),
            lambda as_of: Q(special_care_recipient=True),
        ),
        Rule(
            "subsidized_three_no",
            _("Three-no / extreme hardship (三无/特困)"),
            lambda as_of: Q(three_no=True),
        ),
        Rule("subsidized_five_old", _("Revolutionary five-old (五老人员)"), lambda as_of: Q(five_old=True)),
        Rule("subsidized_centenarian", _("Aged 100 or over"), lambda as_of: aged_at_least(100, as_of)),
        Rule(
            "low_fee_empty_nest_dependent",
            _("Empty-nest and cannot care for self"),
            lambda as_of: EMPTY_NEST & DISABLED,
        ),
        Rule(
            "low_fee_80_empty_nest_no_assistance",
            _("80+, empty-nest, no civil-affairs assistance"),
            lambda as_of: aged_at_least(80, as_of) & EMPTY_NEST & Q(receives_civil_affairs_assistance=False),
        ),
        Rule(
            "low_fee_hardship",
            _("Assessed by the community: some income but real hardship"),
            lambda as_of: Q(hardship_assessed=True),
        ),
        Rule("paid_resident", _("Resident aged 60 or over"), lambda as_of: aged_at_least(60, as_of)),
    ]
}

# Care-visit classes, most intensive first: a senior takes the first class any of whose rules match.
CARE_VISIT_RULES: dict[str, list[Rule]] = {
    "A": [
        Rule("care_a_disabled", _("Disabled (失能)"), lambda as_of: DISABLED),
        Rule(
            "care_a_80_alone",
            _("80+ living alone, empty-nest or left-behind"),
            lambda as_of: aged_at_least(80, as_of) & ALONE_EMPTY_OR_LEFT,
        ),
        Rule(
            "care_a_dibao_alone",
            _("低保 family, living alone, empty-nest or left-behind"),
            lambda as_of: Q(receives_dibao=True) & ALONE_EMPTY_OR_LEFT,
        ),
        Rule(
            "care_a_family_planning_alone",
            _("Family-planning special family, living alone"),
            lambda as_of: Q(family_planning_special=True) & LIVES_ALONE,
        ),
    ],
    "B": [
        Rule(
            "care_b_severely_disabled_alone",
            _("60–79, severely dependent and living alone"),
            lambda as_of: aged_under(80, as_of) & Q(severely_disabled=True) & LIVES_ALONE,
        ),
        Rule(
            "care_b_couple_one_disabled",
            _("60–79 couple, one disabled or demented"),
            lambda as_of: aged_under(80, as_of) & Q(couple_one_disabled=True),
        ),
        Rule(
            "care_b_cares_for_child",
            _("Caring long-term for a disabled or demented child"),
            lambda as_of: Q(cares_for_disabled_child=True),
        ),
    ],
    "C": [
        Rule(
            "care_c_special_difficulty",
            _("Other special-difficulty senior"),
            lambda as_of: Q(special_difficulty=True),
        ),
    ],
}

ALL_RULES: dict[str, Rule] = {
    **TIER_RULES,
    **{rule.code: rule for rules in CARE_VISIT_RULES.values() for rule in rules},
}


def describe(code: str) -> str:
    rule = ALL_RULES.get(code)
    return str(rule.description) if rule else code
