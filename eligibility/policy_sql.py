"""A policy compiled to SQL: the set-based half of the rule engine (the other is
`conditions.explain`, in Python, for one senior).

Each rule's condition becomes a boolean column over the active seniors (through Django's query
compiler, so the same code serves PostgreSQL and SQLite and every value is a parameter; every
fact a condition reads is NOT NULL, so a column is never NULL). Over those columns, one SELECT
gives each senior's outcome: the most favourable tier among the tier rules that match (a CASE in
rank order), the most intensive care-visit class (A, B, C), the matched rule codes as a JSON
array in code order, and a worker's open override, which wins over the rules. Nothing is read
into Python but the policy itself.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Value

from eligibility.conditions import to_q
from eligibility.models import Policy, PolicyRule, Senior, Tier, TierOverride

CARE_ORDER = ("A", "B", "C")
SAFE_CODE = re.compile(r"[-a-zA-Z0-9_]+")


@dataclass(frozen=True)
class CompiledPolicy:
    policy: Policy
    rules: list[PolicyRule]  # in code order: the order of the matched codes
    tiers: list[Tier]  # most favourable first


def compile_policy(policy: Policy) -> CompiledPolicy:
    rules = sorted(policy.rules.select_related("tier"), key=lambda rule: rule.code)
    for rule in rules:
        if not SAFE_CODE.fullmatch(rule.code):  # a slug by the model; checked again, it goes into SQL
            raise ValueError(f"rule code {rule.code!r} is not a slug")
    tiers = sorted(policy.tiers.all(), key=lambda tier: tier.rank)
    return CompiledPolicy(policy=policy, rules=rules, tiers=tiers)


def _flag(condition: dict, as_of: dt.date) -> ExpressionWrapper:
    # The condition itself as the column: PostgreSQL inlines the column at each use (tier, class,
    # matched codes), where a CASE … THEN 1 ELSE 0 END compared with 1 added two steps to each.
    return ExpressionWrapper(to_q(condition, as_of), output_field=BooleanField())


def flags_query(compiled: list[tuple[str, CompiledPolicy]], as_of: dt.date, *, senior_ids=None):
    """(sql, params): one row per active senior (id, community_id) with, for each (prefix,
    policy), a boolean column `{prefix}pop` (in the policy's population) and one `{prefix}r{i}`
    per rule."""
    seniors = Senior.objects.filter(status=Senior.Status.ACTIVE).order_by()
    if senior_ids is not None:
        seniors = seniors.filter(id__in=senior_ids)
    columns = {}
    for prefix, policy in compiled:
        population = policy.policy.population
        columns[f"{prefix}pop"] = (
            _flag(population, as_of) if population else Value(True, output_field=BooleanField())
        )
        for i, rule in enumerate(policy.rules):
            columns[f"{prefix}r{i}"] = _flag(rule.condition, as_of)
    return seniors.annotate(**columns).values("id", "community_id", *columns).query.sql_with_params()


def _any(columns: list[str]) -> str:
    return " OR ".join(f"m.{column}" for column in columns)


def tier_case(policy: CompiledPolicy, prefix: str) -> str:
    """SQL: the id of the most favourable tier whose rules match, else NULL."""
    whens = []
    for tier in policy.tiers:
        columns = [f"{prefix}r{i}" for i, rule in enumerate(policy.rules) if rule.tier_id == tier.pk]
        if columns:
            whens.append(f"WHEN {_any(columns)} THEN {int(tier.pk)}")
    if not whens:
        return "CAST(NULL AS integer)"
    return f"CASE WHEN NOT m.{prefix}pop THEN NULL {' '.join(whens)} ELSE NULL END"


def care_case(policy: CompiledPolicy, prefix: str) -> str:
    """SQL: the most intensive care-visit class whose rules match, else ''."""
    whens = []
    for care_class in CARE_ORDER:
        columns = [
            f"{prefix}r{i}" for i, rule in enumerate(policy.rules) if rule.care_visit_class == care_class
        ]
        if columns:
            whens.append(f"WHEN {_any(columns)} THEN '{care_class}'")
    if not whens:
        return "''"
    return f"CASE WHEN NOT m.{prefix}pop THEN '' {' '.join(whens)} ELSE '' END"


def matched_expression(policy: CompiledPolicy, prefix: str) -> str:
    """SQL: the codes of the matching rules as a JSON array in code order, ["a","b"]: jsonb on
    PostgreSQL (built as an array, not as text parsed by a ::jsonb cast), JSON text on SQLite."""
    if connection.vendor == "postgresql":
        if not policy.rules:
            return "'[]'::jsonb"
        codes = ", ".join(
            f"CASE WHEN m.{prefix}r{i} THEN '{rule.code}' END" for i, rule in enumerate(policy.rules)
        )
        return (
            f"CASE WHEN NOT m.{prefix}pop THEN '[]'::jsonb "
            f"ELSE to_jsonb(array_remove(ARRAY[{codes}], NULL)) END"
        )
    if not policy.rules:
        return "'[]'"
    parts = " || ".join(
        f"CASE WHEN m.{prefix}r{i} THEN '\"{rule.code}\",' ELSE '' END" for i, rule in enumerate(policy.rules)
    )
    return f"CASE WHEN NOT m.{prefix}pop THEN '[]' ELSE '[' || rtrim({parts}, ',') || ']' END"


def override_join(policy: Policy, as_of: dt.date, alias: str = "ov") -> tuple[str, list]:
    """SQL of a LEFT JOIN `alias` (senior_id, override_id, tier_id): each senior's open override on
    `as_of`, mapped by tier code to this policy's tier (an override of a code the policy lacks
    does not apply)."""
    override, tier = TierOverride._meta.db_table, Tier._meta.db_table
    day = connection.ops.adapt_datefield_value(as_of)
    sql = f"""
        LEFT JOIN (
            SELECT o.senior_id, o.id AS override_id, t.id AS tier_id
            FROM {override} o JOIN {tier} t ON t.code = o.tier_code AND t.policy_id = %s
            WHERE o.ended_at IS NULL AND %s BETWEEN o.starts_on AND o.expires_on
        ) {alias} ON {alias}.senior_id = m.id
    """  # noqa: S608 - table names come from model metadata, values are parameters
    return sql, [policy.pk, day]


def outcome_query(policy: Policy, as_of: dt.date, *, senior_ids=None) -> tuple[str, list]:
    """(sql, params): each active senior's outcome under `policy` on `as_of`, one row per senior
    who has a tier or a care-visit class: senior_id, tier_id, care, matched (JSON on
    PostgreSQL, JSON text on SQLite), override_id."""
    compiled = compile_policy(policy)
    flags_sql, flags_params = flags_query([("", compiled)], as_of, senior_ids=senior_ids)
    join_sql, join_params = override_join(policy, as_of)
    sql = f"""
        SELECT senior_id, tier_id, care, matched, override_id FROM (
            SELECT m.id AS senior_id,
                   COALESCE(ov.tier_id, {tier_case(compiled, "")}) AS tier_id,
                   {care_case(compiled, "")} AS care,
                   {matched_expression(compiled, "")} AS matched,
                   ov.override_id AS override_id
            FROM ({flags_sql}) m
            {join_sql}
        ) outcome
        WHERE tier_id IS NOT NULL OR care <> ''
    """  # noqa: S608 - the SQL is built from model metadata, ids and validated codes
    return sql, [*flags_params, *join_params]


def comparison_query(current: Policy, draft: Policy, as_of: dt.date) -> tuple[str, list]:
    """(sql, params): for every active senior, grouped by community, the tier and class under
    `current` (prefix a) and under `draft` (prefix b), with counts: community_id, a_tier, b_tier,
    a_care, b_care, seniors. Overrides apply under both (an override never moves)."""
    a, b = compile_policy(current), compile_policy(draft)
    flags_sql, flags_params = flags_query([("a", a), ("b", b)], as_of)
    join_a, params_a = override_join(current, as_of, "ova")
    join_b, params_b = override_join(draft, as_of, "ovb")
    sql = f"""
        SELECT community_id, a_tier, b_tier, a_care, b_care, COUNT(*) AS seniors FROM (
            SELECT m.community_id,
                   COALESCE(ova.tier_id, {tier_case(a, "a")}) AS a_tier,
                   COALESCE(ovb.tier_id, {tier_case(b, "b")}) AS b_tier,
                   {care_case(a, "a")} AS a_care,
                   {care_case(b, "b")} AS b_care
            FROM ({flags_sql}) m
            {join_a}
            {join_b}
        ) both_policies
        GROUP BY community_id, a_tier, b_tier, a_care, b_care
    """  # noqa: S608 - the SQL is built from model metadata, ids and validated codes
    return sql, [*flags_params, *params_a, *params_b]
