"""The condition language of policy rules: a small validated structure over a senior's facts.

A condition is JSON, never code: no `eval`, no free SQL. Its nodes are

- ``{"all": [c, …]}``, ``{"any": [c, …]}`` (each with at least one member) and ``{"not": c}``;
- ``{"fact": "age", "op": ">=", "value": 80}``: the senior's age in whole years on the
  evaluation date, compared with ``>= > <= < == !=``;
- ``{"fact": "receives_dibao", "op": "is", "value": true}``: a yes/no fact;
- ``{"fact": "living_arrangement", "op": "in", "value": ["alone", "empty_nest"]}``: an
  enumeration, with ``in`` or ``not_in`` a non-empty list of its values.

One condition has two evaluators that give the same answer (a hypothesis test holds them to
it): `to_q` compiles it to a query filter, so the database decides a whole city in one
statement, and `explain` runs it in Python over one senior and says why it held or failed
("age 78 < 80"). `describe` puts it in plain words ("年满80周岁 且 独居").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from config.i18n import in_language

MAX_DEPTH = 8
MAX_NODES = 100
MAX_AGE = 150


class ConditionError(ValueError):
    """A condition that is not well formed; `message` says where, in the user's language."""

    def __init__(self, message, path: str = ""):
        self.message = message
        self.path = path
        super().__init__(f"{path}: {message}" if path else str(message))

    @property
    def detail(self) -> str:
        where = self.path or "condition"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Fact:
    """A fact of the registry that a condition may read."""

    name: str
    kind: str  # "age", "flag" or "choice"
    label: Any  # lazy translation
    # For a flag: the words for "is true" and "is false", each (zh-Hans, English).
    yes: tuple[str, str] = ("", "")
    no: tuple[str, str] = ("", "")
    # For a choice: value -> (zh-Hans, English)
    choices: dict[str, tuple[str, str]] = field(default_factory=dict)


def _flag(name, label, yes, no):
    return Fact(name, "flag", label, yes=yes, no=no)


FACTS: dict[str, Fact] = {
    fact.name: fact
    for fact in [
        Fact("age", "age", _("age on the evaluation date")),
        Fact(
            "sex",
            "choice",
            _("sex"),
            choices={"M": ("男性", "male"), "F": ("女性", "female")},
        ),
        Fact(
            "living_arrangement",
            "choice",
            _("living arrangement"),
            choices={
                "alone": ("独居", "living alone"),
                "empty_nest": ("空巢", "empty-nest"),
                "left_behind": ("留守", "left-behind"),
                "with_family": ("与家人同住", "living with family"),
            },
        ),
        Fact(
            "self_care",
            "choice",
            _("self-care ability"),
            choices={
                "independent": ("能自理", "able to care for self"),
                "partial": ("半失能", "partly able to care for self"),
                "disabled": ("失能", "unable to care for self"),
            },
        ),
        _flag(
            "children_in_city",
            _("has children living in the city"),
            ("子女在本市", "has children in the city"),
            ("子女不在本市", "no children in the city"),
        ),
        _flag("dementia", _("dementia"), ("失智", "has dementia"), ("非失智", "no dementia")),
        _flag(
            "severely_disabled",
            _("severely disabled"),
            ("重度失能", "severely disabled"),
            ("非重度失能", "not severely disabled"),
        ),
        _flag(
            "receives_dibao",
            _("receives minimum-living allowance (低保)"),
            ("享受低保", "receives 低保"),
            ("不享受低保", "does not receive 低保"),
        ),
        _flag(
            "three_no",
            _("three-no / extreme hardship (三无/特困)"),
            ("三无/特困人员", "three-no / extreme hardship"),
            ("非三无/特困人员", "not three-no / extreme hardship"),
        ),
        _flag(
            "special_care_recipient",
            _("key special-care recipient (重点优抚)"),
            ("重点优抚对象", "key special-care recipient"),
            ("非重点优抚对象", "not a key special-care recipient"),
        ),
        _flag(
            "five_old",
            _("revolutionary five-old (五老)"),
            ("五老人员", "revolutionary five-old"),
            ("非五老人员", "not revolutionary five-old"),
        ),
        _flag(
            "family_planning_special",
            _("family-planning special family"),
            ("计划生育特殊家庭", "family-planning special family"),
            ("非计划生育特殊家庭", "not a family-planning special family"),
        ),
        _flag(
            "receives_civil_affairs_assistance",
            _("receives civil-affairs assistance"),
            ("享受民政救助", "receives civil-affairs assistance"),
            ("未享受民政救助", "receives no civil-affairs assistance"),
        ),
        _flag(
            "hardship_assessed",
            _("community-assessed hardship"),
            ("经社区评估有一定收入但确有困难", "assessed by the community: some income but real hardship"),
            ("未经社区评估为困难", "not assessed as in hardship"),
        ),
        _flag(
            "cares_for_disabled_child",
            _("cares for a disabled or demented child"),
            ("长期照顾失能或失智子女", "cares long-term for a disabled or demented child"),
            ("不照顾失能或失智子女", "does not care for a disabled or demented child"),
        ),
        _flag(
            "couple_one_disabled",
            _("couple, one disabled or demented"),
            ("夫妻一方失能或失智", "couple, one disabled or demented"),
            ("非夫妻一方失能或失智", "not a couple with one disabled or demented"),
        ),
        _flag(
            "special_difficulty",
            _("special-difficulty senior"),
            ("特殊困难老人", "special-difficulty senior"),
            ("非特殊困难老人", "not a special-difficulty senior"),
        ),
    ]
}
# The Senior field each fact reads (age reads the birth date).
FACT_FIELDS = {name: ("birth_date" if name == "age" else name) for name in FACTS}

AGE_OPS = (">=", ">", "<=", "<", "==", "!=")
CHOICE_OPS = ("in", "not_in")
OPS_OF_KIND = {"age": AGE_OPS, "flag": ("is",), "choice": CHOICE_OPS}
GROUPS = ("all", "any", "not")


# --- Validation ----------------------------------------------------------------------------------


def validate(condition) -> dict:
    """The condition, checked and normalised (lists of choices sorted, no duplicates); raises
    ConditionError naming the first problem and where it is ("any[1].value")."""
    counter = [0]
    return _validate(condition, "", 1, counter)


def _validate(node, path, depth, counter):
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise ConditionError(_("A condition has at most %(n)d parts.") % {"n": MAX_NODES}, path)
    if depth > MAX_DEPTH:
        raise ConditionError(_("A condition nests at most %(n)d levels deep.") % {"n": MAX_DEPTH}, path)
    if not isinstance(node, dict):
        raise ConditionError(_("Each part of a condition is an object {…}."), path)
    groups = [key for key in GROUPS if key in node]
    if groups:
        key = groups[0]
        if set(node) != {key}:
            raise ConditionError(_("A group (all, any, not) has no other keys."), path)
        if key == "not":
            return {
                "not": _validate(node["not"], f"{path}not" if not path else f"{path}.not", depth + 1, counter)
            }
        members = node[key]
        if not isinstance(members, list) or not members:
            raise ConditionError(_("“%(key)s” needs a non-empty list of conditions.") % {"key": key}, path)
        prefix = f"{path}." if path else ""
        return {
            key: [
                _validate(member, f"{prefix}{key}[{i}]", depth + 1, counter)
                for i, member in enumerate(members)
            ]
        }
    if set(node) != {"fact", "op", "value"}:
        raise ConditionError(
            _("A comparison has exactly the keys fact, op and value (or is a group: all, any, not)."), path
        )
    fact = FACTS.get(node["fact"]) if isinstance(node["fact"], str) else None
    if fact is None:
        raise ConditionError(_("Unknown fact “%(fact)s”.") % {"fact": node["fact"]}, path)
    op, value = node["op"], node["value"]
    if op not in OPS_OF_KIND[fact.kind]:
        raise ConditionError(
            _("“%(fact)s” is compared with one of: %(ops)s.")
            % {"fact": fact.name, "ops": " ".join(OPS_OF_KIND[fact.kind])},
            path,
        )
    value_path = f"{path}.value" if path else "value"
    if fact.kind == "age":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AGE:
            raise ConditionError(
                _("An age is a whole number from 0 to %(max)d.") % {"max": MAX_AGE}, value_path
            )
    elif fact.kind == "flag":
        if not isinstance(value, bool):
            raise ConditionError(_("A yes/no fact is compared with true or false."), value_path)
    else:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConditionError(_("“in” and “not_in” take a non-empty list of values."), value_path)
        unknown = [v for v in value if v not in fact.choices]
        if unknown:
            raise ConditionError(
                _("“%(value)s” is not a value of %(fact)s (one of: %(values)s).")
                % {"value": unknown[0], "fact": fact.name, "values": ", ".join(fact.choices)},
                value_path,
            )
        value = sorted(set(value), key=list(fact.choices).index)
    return {"fact": fact.name, "op": op, "value": value}


# --- Ages ----------------------------------------------------------------------------------------


def born_on_or_before(as_of: dt.date, years: int) -> dt.date:
    """The latest birth date of someone who is at least `years` old on `as_of`."""
    try:
        return as_of.replace(year=as_of.year - years)
    except ValueError:  # 29 February in a non-leap target year
        return as_of.replace(year=as_of.year - years, day=28)


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Whole years of age on `day` (a 29 February birthday comes on 1 March in common years)."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def _aged_at_least(years: int, as_of: dt.date) -> Q:
    if years <= 0:  # born on or before the day (a birth date after it is a negative age)
        return Q(birth_date__lte=as_of)
    return Q(birth_date__lte=born_on_or_before(as_of, years))


# --- (a) To SQL: a query filter -------------------------------------------------------------------


def to_q(condition: dict, as_of: dt.date) -> Q:
    """The condition as a filter on `eligibility.Senior` rows, for the facts as of `as_of`.

    Every fact it reads is NOT NULL, so negation is plain boolean negation in SQL as in Python.
    """
    if "all" in condition:
        q = Q()
        for member in condition["all"]:
            q &= to_q(member, as_of)
        return q
    if "any" in condition:
        members = [to_q(member, as_of) for member in condition["any"]]
        q = members[0]
        for member in members[1:]:
            q |= member
        return q
    if "not" in condition:
        return ~to_q(condition["not"], as_of)
    fact, op, value = FACTS[condition["fact"]], condition["op"], condition["value"]
    if fact.kind == "flag":
        return Q(**{fact.name: value})
    if fact.kind == "choice":
        q = Q(**{f"{fact.name}__in": value})
        return q if op == "in" else ~q
    at_least = {">=": value, ">": value + 1, "<": value, "<=": value + 1}
    if op in (">=", ">"):
        return _aged_at_least(at_least[op], as_of)
    if op in ("<", "<="):
        return ~_aged_at_least(at_least[op], as_of)
    exactly = _aged_at_least(value, as_of) & ~_aged_at_least(value + 1, as_of)
    return exactly if op == "==" else ~exactly


# --- (b) In Python: one senior, with reasons -----------------------------------------------------


@dataclass
class Outcome:
    """Whether a condition held for one senior, and the comparisons that decided it."""

    holds: bool
    # The leaf comparisons that went against the condition (for a failure: what was not met).
    failed: list[dict] = field(default_factory=list)
    # The leaf comparisons that were met (for a match: why).
    met: list[dict] = field(default_factory=list)


def fact_value(facts, name: str, as_of: dt.date):
    """A fact of a senior (a model instance or a mapping of field values) as a condition sees it."""
    get = facts.get if isinstance(facts, dict) else lambda key: getattr(facts, key)
    if name == "age":
        return age_on(get("birth_date"), as_of)
    return get(name)


def _leaf_holds(leaf, actual) -> bool:
    op, value = leaf["op"], leaf["value"]
    if op == "is":
        return bool(actual) is value
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    return {
        ">=": actual >= value,
        ">": actual > value,
        "<=": actual <= value,
        "<": actual < value,
        "==": actual == value,
        "!=": actual != value,
    }[op]


def explain(condition: dict, facts, as_of: dt.date) -> Outcome:
    """Run the condition over one senior's facts; the outcome lists the deciding comparisons,
    each a dict {"leaf", "actual", "negated"} for `describe_check`."""
    return _explain(condition, facts, as_of, negated=False)


def _explain(node, facts, as_of, *, negated):
    if "all" in node or "any" in node:
        is_all = "all" in node
        parts = [
            _explain(member, facts, as_of, negated=negated) for member in node["all" if is_all else "any"]
        ]
        holds = all(p.holds for p in parts) if is_all else any(p.holds for p in parts)
        failed = [check for p in parts if not p.holds for check in p.failed]
        met = [check for p in parts if p.holds for check in p.met]
        if holds:
            return Outcome(True, met=met)
        if is_all:
            return Outcome(False, failed=failed)
        # Nothing of an "any" was met: each alternative's failures count
        return Outcome(False, failed=failed)
    if "not" in node:
        inner = _explain(node["not"], facts, as_of, negated=not negated)
        # What made the inner part hold is what made "not" fail, and the other way round.
        return Outcome(not inner.holds, failed=inner.met, met=inner.failed)
    actual = fact_value(facts, node["fact"], as_of)
    check = {"leaf": node, "actual": actual, "negated": negated}
    if _leaf_holds(node, actual):
        return Outcome(True, met=[check])
    return Outcome(False, failed=[check])


def holds(condition: dict, facts, as_of: dt.date) -> bool:
    return explain(condition, facts, as_of).holds


def shortfall(condition: dict, facts, as_of: dt.date) -> int:
    """How many comparisons a senior misses for the condition to hold (0 when it holds): the
    fewest over the alternatives of an "any". Used to find the nearest rule not met."""
    return _shortfall(condition, facts, as_of, want=True)


def _shortfall(node, facts, as_of, *, want):
    if "not" in node:
        return _shortfall(node["not"], facts, as_of, want=not want)
    if "all" in node or "any" in node:
        members = node["all" if "all" in node else "any"]
        costs = [_shortfall(member, facts, as_of, want=want) for member in members]
        # all wanted true, or any wanted false: every member must go the wanted way
        conjunctive = ("all" in node) == want
        return sum(costs) if conjunctive else min(costs)
    return 0 if _leaf_holds(node, fact_value(facts, node["fact"], as_of)) == want else 1


# --- Plain words ---------------------------------------------------------------------------------

AND = (" 且 ", " and ")
OR = (" 或 ", " or ")


def _words(zh: str, en: str) -> str:
    return in_language(zh, en)


def describe_leaf(leaf: dict) -> str:
    fact, op, value = FACTS[leaf["fact"]], leaf["op"], leaf["value"]
    if fact.kind == "flag":
        return _words(*(fact.yes if value else fact.no))
    if fact.kind == "choice":
        zh = "或".join(fact.choices[v][0] for v in value)
        en = " or ".join(fact.choices[v][1] for v in value)
        if op == "in":
            return _words(zh, en)
        if len(value) > 1:
            return _words(f"非（{zh}）", f"not ({en})")
        return _words(f"非{zh}", f"not {en}")
    zh = {
        ">=": f"年满{value}周岁",
        ">": f"年满{value + 1}周岁",
        "<": f"未满{value}周岁",
        "<=": f"未满{value + 1}周岁",
        "==": f"{value}周岁",
        "!=": f"不是{value}周岁",
    }[op]
    en = {
        ">=": f"aged {value} or over",
        ">": f"aged over {value}",
        "<": f"under {value}",
        "<=": f"aged {value} or under",
        "==": f"aged {value}",
        "!=": f"not aged {value}",
    }[op]
    return _words(zh, en)


def describe(condition: dict, *, _nested: bool = False) -> str:
    """The condition in plain words in the active language: "年满80周岁 且 独居或空巢"."""
    if "all" in condition or "any" in condition:
        key = "all" if "all" in condition else "any"
        joiner = _words(*(AND if key == "all" else OR))
        parts = [describe(member, _nested=True) for member in condition[key]]
        if len(parts) == 1:
            return parts[0]
        text = joiner.join(parts)
        return _words(f"（{text}）", f"({text})") if _nested else text
    if "not" in condition:
        inner = condition["not"]
        return _words(f"并非（{describe(inner)}）", f"not ({describe(inner)})")
    return describe_leaf(condition)


def describe_check(check: dict) -> str:
    """One deciding comparison with the senior's own value: "age 78 < 80", "独居: 否"."""
    leaf, actual = check["leaf"], check["actual"]
    fact = FACTS[leaf["fact"]]
    if fact.kind == "age":
        symbol = _OP_SYMBOL[leaf["op"]] if _leaf_holds(leaf, actual) else _NEGATED_OP[leaf["op"]]
        return _words(f"年龄 {actual} {symbol} {leaf['value']}", f"age {actual} {symbol} {leaf['value']}")
    if fact.kind == "flag":
        return _words(*(fact.yes if actual else fact.no))
    zh, en = fact.choices.get(actual, (actual, actual))
    return _words(f"{fact.label}：{zh}", f"{fact.label}: {en}")


_OP_SYMBOL = {">=": "≥", ">": ">", "<=": "≤", "<": "<", "==": "=", "!=": "≠"}
_NEGATED_OP = {">=": "<", ">": "≤", "<=": ">", "<": "≥", "==": "≠", "!=": "="}
