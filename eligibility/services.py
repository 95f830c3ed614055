"""Writes of the eligibility app: the registry, the default policy, and evaluation."""

import datetime as dt
import logging
import re
from dataclasses import dataclass

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.months import first_day, local_date, next_month
from config.resilience import cache_call
from config.roles import OFFICER, WORKER, roles_of
from eligibility import conditions, default_policy, policy_sql
from eligibility.conditions import age_on
from eligibility.errors import EligibilityError
from eligibility.models import (
    Determination,
    EvaluationRun,
    ImportJob,
    Policy,
    PolicyRule,
    Region,
    RegionScope,
    Senior,
    Tier,
    TierOverride,
)
from eligibility.names import name_initials
from eligibility.normalise import (
    birth_date_of,
    normalise_id_card_number,
    normalise_phone,
    normalise_text,
    sex_of,
)
from eligibility.selectors import (
    EVALUATION_STEPS,
    evaluation_date,
    evaluation_progress_key,
    import_progress_key,
    policy_in_force,
)
from eligibility.signals import senior_left
from outbox import services as outbox

# The facts the rules read (DESIGN.md §4.1 and §4.4): enumerations and yes/no flags.
CHOICE_FACTS = ("living_arrangement", "self_care")
FLAG_FACTS = (
    "children_in_city",
    "dementia",
    "severely_disabled",
    "receives_dibao",
    "three_no",
    "special_care_recipient",
    "five_old",
    "family_planning_special",
    "receives_civil_affairs_assistance",
    "hardship_assessed",
    "cares_for_disabled_child",
    "couple_one_disabled",
    "special_difficulty",
)
FACT_FIELDS = frozenset((*CHOICE_FACTS, *FLAG_FACTS))
CONTACT_FIELDS = (
    "phone",
    "address",
    "emergency_contact_name",
    "emergency_contact_relation",
    "emergency_contact_phone",
)
PHONE_FIELDS = ("phone", "emergency_contact_phone")
# What `update_senior` may change. The ID-card number (and so birth date and sex) never changes:
# a wrong number is a new registration; the status changes through `change_senior_status`.
EDITABLE_FIELDS = ("name", "community", *CONTACT_FIELDS, *FACT_FIELDS)
MINIMUM_AGE = 60


def _label(name: str) -> str:
    return str(Senior._meta.get_field(name).verbose_name)


def _clean_changes(values: dict) -> dict:
    """Normalised, validated field values; refuses `invalid_input` or `invalid_phone`."""
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise EligibilityError(
            "invalid_input", _("Unknown fields: %(names)s."), names=", ".join(sorted(unknown))
        )
    cleaned = {}
    for name, value in values.items():
        if name == "name":
            value = normalise_text(value)
            if not value:
                raise EligibilityError("invalid_input", _("The name is required."), field="name")
        elif name == "community":
            if not isinstance(value, Region) or value.level != Region.Level.COMMUNITY:
                raise EligibilityError(
                    "invalid_input", _("A senior must be registered in a community."), field="community"
                )
        elif name in PHONE_FIELDS:
            value = normalise_phone(value, field=name)
        elif name in CONTACT_FIELDS:
            value = normalise_text(value)
        elif name in FLAG_FACTS:
            if not isinstance(value, bool):
                raise EligibilityError(
                    "invalid_input", _("%(label)s: answer yes or no."), field=name, label=_label(name)
                )
        elif name in CHOICE_FACTS:
            choices = Senior._meta.get_field(name).choices
            if value not in {code for code, _label in choices}:
                raise EligibilityError(
                    "invalid_input",
                    _("%(label)s: not one of the listed values."),
                    field=name,
                    label=_label(name),
                )
        cleaned[name] = value
    return cleaned


def _attributed(senior: Senior, *, by, reason: str) -> Senior:
    """Tell django-simple-history who made the change and why (it records the row on save)."""
    senior._history_user = by
    senior._change_reason = reason[:100]
    return senior


def build_senior(
    *, id_card_number: str, status_date: dt.date, created_by=None, today: dt.date | None = None, **values
) -> Senior:
    """An unsaved senior from a registration, validated: what `register_senior` and the import
    both insert. Birth date and sex come from the ID-card number, never typed twice.

    Refuses: `invalid_id_card_number`, `under_60`, `invalid_input`, `invalid_phone`.
    """
    number = normalise_id_card_number(id_card_number)
    if "name" not in values or "community" not in values:
        raise EligibilityError("invalid_input", _("The name and the community are required."))
    cleaned = _clean_changes(values)
    birth_date = birth_date_of(number)
    today = today or local_date(timezone.now())
    if age_on(birth_date, today) < MINIMUM_AGE:
        raise EligibilityError(
            "under_60",
            _("This person is %(age)s; the registry is for residents aged 60 and over."),
            age=age_on(birth_date, today),
        )
    return Senior(
        id_card_number=number,
        birth_date=birth_date,
        sex=sex_of(number),
        status_date=status_date,
        created_by=created_by,
        name_initials=name_initials(cleaned["name"]),
        **cleaned,
    )


@transaction.atomic
def register_senior(
    *,
    id_card_number: str,
    name: str,
    community: Region,
    status_date: dt.date | None = None,
    created_by=None,
    **values,
) -> Senior:
    """Register one senior (一人一档). Birth date and sex come from the ID-card number.

    `values` are contact fields and facts (EDITABLE_FIELDS). The history records who registered;
    the senior is evaluated at once when a policy is in force.
    Refuses: `invalid_id_card_number`, `under_60`, `duplicate_senior` (already registered),
    `invalid_input` (not a community, unknown field, blank name), `invalid_phone`.
    """
    wait_for_city_evaluation()
    senior = build_senior(
        id_card_number=id_card_number,
        name=name,
        community=community,
        status_date=status_date or local_date(timezone.now()),
        created_by=created_by,
        **values,
    )
    if Senior.objects.filter(id_card_number=senior.id_card_number).exists():
        raise EligibilityError("duplicate_senior", _("This person is already registered."))
    _attributed(senior, by=created_by, reason="register")
    try:
        with transaction.atomic():
            senior.save()
    except IntegrityError:
        # Registered by someone else between our check and our insert (a double submit).
        raise EligibilityError("duplicate_senior", _("This person is already registered.")) from None
    reevaluate_seniors(senior_ids=[senior.pk], by=created_by)
    return senior


def reevaluate_seniors(*, senior_ids: list[int], by) -> "EvaluationResult | None":
    """Evaluate the given seniors now, so the registry shows the tier their facts give today;
    nothing when no policy is in force yet (a new install). Their vouchers keep their terms.

    As of today, or as of a later day where their current determination already looks ahead:
    the month-end run decides next month (as of the 1st, under the version in force then), and
    an edit on the evening between it and issuance must not put the senior back under this
    month's version for next month's voucher."""
    if not senior_ids:
        return None
    today = local_date(timezone.now())
    ahead = (
        Determination.objects.filter(
            senior_id__in=senior_ids,
            is_current=True,
            as_of__gt=today,
            as_of__lte=next_month(first_day(today)),
        )
        .order_by("-as_of")
        .values_list("as_of", flat=True)
        .first()
    )
    as_of = max(ahead or today, evaluation_date(today=today))
    if policy_in_force(as_of=as_of) is None:
        return None
    return evaluate_eligibility(as_of=as_of, determined_by=by, senior_ids=senior_ids)


def apply_senior_changes(senior: Senior, values: dict) -> list[str]:
    """Set the validated `values` on `senior` (unsaved); returns the names of fields that changed.

    The one place that decides what an edit is: `update_senior` and the import both use it.
    """
    cleaned = _clean_changes(values)
    changed = []
    for name, value in cleaned.items():
        current = senior.community_id if name == "community" else getattr(senior, name)
        new = value.pk if name == "community" else value
        if current != new:
            setattr(senior, name, value)
            changed.append(name)
    if "name" in changed:
        senior.name_initials = name_initials(senior.name)
    return changed


@transaction.atomic
def update_senior(*, senior: Senior, by, reason: str = "edit", **values) -> list[str]:
    """Change a senior's name, community, contacts or facts; returns the fields that changed.

    Locks the row, applies the change and saves only when something changed, so the history
    holds one attributable entry (who, when, old → new) per real change; a changed fact
    re-evaluates the senior at once (their tier for next month's voucher).
    Refuses: `invalid_input`, `invalid_phone`.
    """
    wait_for_city_evaluation()
    locked = Senior.objects.select_for_update().get(pk=senior.pk)
    changed = apply_senior_changes(locked, values)
    if changed:
        _attributed(locked, by=by, reason=reason)
        fields = [*changed, "updated_at"]
        if "name" in changed:
            fields.append("name_initials")
        locked.save(update_fields=fields)
    for name in (*changed, "name_initials", "updated_at", "status", "status_date"):
        setattr(senior, name, getattr(locked, name))
    if FACT_FIELDS.intersection(changed):
        reevaluate_seniors(senior_ids=[senior.pk], by=by)
    return changed


@transaction.atomic
def change_senior_status(
    *, senior: Senior, status: str, on: dt.date, by, today: dt.date | None = None
) -> Senior:
    """Mark a senior moved out or deceased (or active again) from a date.

    Leaving stops money at once: in the same transaction, `senior_left` lets the vouchers app
    revoke their vouchers valid on or after `on` (scans are then refused `voucher_revoked`),
    their determination is retired at once, and evaluation issues nothing more for them.
    Refuses `invalid_input` for an unknown status, the status they already have, or a date in
    the future or before they were born.
    """
    if status not in Senior.Status.values:
        raise EligibilityError("invalid_input", _("Unknown status."), field="status")
    today = today or local_date(timezone.now())
    wait_for_city_evaluation()
    locked = Senior.objects.select_for_update().get(pk=senior.pk)
    if locked.status == status:
        raise EligibilityError("invalid_input", _("The senior already has this status."), field="status")
    if on > today or on < locked.birth_date:
        raise EligibilityError(
            "invalid_input", _("The date must be between the birth date and today."), field="status_date"
        )
    locked.status, locked.status_date = status, on
    _attributed(locked, by=by, reason=f"status:{status}")
    locked.save(update_fields=["status", "status_date", "updated_at"])
    if status != Senior.Status.ACTIVE:
        senior_left.send(sender=Senior, senior=locked, on=on, by=by)
    # Leaving retires the determination (no tier shown, none counted); coming back makes one.
    reevaluate_seniors(senior_ids=[locked.pk], by=by)
    senior.status, senior.status_date = locked.status, locked.status_date
    return locked


@transaction.atomic
def assign_region_scope(*, user, region: Region | None, by) -> RegionScope | None:
    """Give a bureau administrator, officer or worker the region they work in (None: remove it).

    A worker's region is one community; an officer's a subdistrict or district.
    Refuses `invalid_input` when the region does not fit the user's role.
    """
    user_roles = set(roles_of(user))
    if region is None:
        RegionScope.objects.filter(user=user).delete()
        return None
    if WORKER in user_roles and region.level != Region.Level.COMMUNITY:
        raise EligibilityError("invalid_input", _("A community worker works in one community."))
    if OFFICER in user_roles and region.level == Region.Level.COMMUNITY:
        raise EligibilityError("invalid_input", _("An officer looks after a subdistrict or a district."))
    scope, _created = RegionScope.objects.update_or_create(
        user=user, defaults={"region": region, "assigned_by": by}
    )
    user._region_scope = region
    return scope


@transaction.atomic
def ensure_default_policy() -> Policy:
    """The default policy of DESIGN.md §4.1–4.4 (eligibility.default_policy). A data migration
    loads it on a new database; this returns it, or loads it where a test flushed it away."""
    policy = (
        Policy.objects.filter(code=default_policy.CODE)
        .exclude(status=Policy.Status.DRAFT)
        .order_by("version")
        .first()
    )
    if policy is not None:
        return policy
    return default_policy.create_default_policy(Policy, Tier, PolicyRule)


@dataclass(frozen=True)
class EvaluationResult:
    as_of: dt.date
    policy: Policy
    evaluated: int
    changed: int
    retired: int


def wait_for_city_evaluation() -> None:
    """Wait (PostgreSQL) for a whole-city evaluation in progress to commit, before a write that
    locks a senior and then evaluates them: the evaluation of a few seniors shares the lock that a
    city run holds alone. Taken before the senior's row lock, so the two can never deadlock (the
    city run's foreign-key checks at commit need that row), and an edit after the run sees its
    determinations and replaces them, instead of adding a second current one."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [EVALUATION_LOCK])


OUTCOME_TABLE = "eligibility_outcome"
EVALUATION_LOCK = 7_300_107  # the PostgreSQL advisory lock key of evaluations


def _execute(cursor, sql: str, params=()) -> int:
    cursor.execute(sql, params)
    return max(cursor.rowcount, 0)


@transaction.atomic
def evaluate_eligibility(
    *,
    as_of: dt.date,
    determined_by=None,
    job: str = "",
    senior_ids: list[int] | None = None,
    progress=None,
    record_run: bool = True,
) -> EvaluationResult:
    """Evaluate every active senior (or the given ones) against the policy in force on `as_of`.

    A handful of set-based statements (eligibility.policy_sql), whatever the size of the city:
    the outcomes compared with the current determinations in one join, and only the differences
    into a temporary table; retire the current determination of each senior who no longer has an
    outcome (moved away, deceased, outside the policy's population); end the current
    determination where the outcome changed (policy, tier, class, matched rules, override);
    insert the new ones. No Python loop over seniors, no list of ids in memory.
    `progress(step, steps)`, if given, is called after each statement. Attributable: the user,
    or the scheduled job by name; a whole-city run is recorded as an EvaluationRun (unless the
    caller keeps its own, `record_run=False`). Refuses `no_policy` when none is in force.
    """
    policy = policy_in_force(as_of=as_of)
    if policy is None:
        raise EligibilityError("no_policy", _("No policy is in force on %(date)s."), date=as_of.isoformat())
    progress = progress or (lambda step, steps: None)
    if senior_ids is not None and not senior_ids:  # no one to evaluate
        return EvaluationResult(as_of=as_of, policy=policy, evaluated=0, changed=0, retired=0)
    determination = Determination._meta.db_table
    postgres = connection.vendor == "postgresql"
    same = "IS NOT DISTINCT FROM" if postgres else "IS"
    matched_equal = "d.matched_rules = o.matched" if postgres else "json(d.matched_rules) = json(o.matched)"
    outcome_sql, outcome_params = policy_sql.outcome_query(policy, as_of, senior_ids=senior_ids)
    in_scope, scope_params = "", []
    if senior_ids is not None:
        ids = sorted(set(senior_ids))
        in_scope = f" AND d.senior_id IN ({', '.join(['%s'] * len(ids))})" if ids else " AND 1 = 0"
        scope_params = ids
    current_sql = f"""SELECT d.id, d.senior_id, d.policy_id, d.tier_id, d.care_visit_class, d.matched_rules,
        d.override_id FROM {determination} d WHERE d.is_current = %s{in_scope}"""  # noqa: S608 - names from model metadata, values are parameters
    unchanged = f"""d.policy_id = %s AND d.tier_id {same} o.tier_id AND d.care_visit_class = o.care
        AND {matched_equal} AND d.override_id {same} o.override_id"""
    columns = "o.senior_id, o.tier_id, o.care, o.matched, o.override_id"
    if postgres:
        # One pass over the city: a FULL JOIN pairs each outcome with the current determination;
        # only the pairs that differ are kept (none when nothing changed, so a re-run writes nothing).
        changes_sql = f"""SELECT {columns}, d.id AS current_id
            FROM ({outcome_sql}) o FULL JOIN ({current_sql}) d ON d.senior_id = o.senior_id
            WHERE o.senior_id IS NULL OR d.id IS NULL OR NOT ({unchanged})"""  # noqa: S608 - names from model metadata, values are parameters
        changes_params = [*outcome_params, True, *scope_params, policy.pk]
    else:
        # SQLite before 3.39 has no FULL JOIN: its two halves.
        changes_sql = f"""SELECT {columns}, d.id AS current_id
            FROM ({outcome_sql}) o LEFT JOIN ({current_sql}) d ON d.senior_id = o.senior_id
            WHERE d.id IS NULL OR NOT ({unchanged})
            UNION ALL
            SELECT NULL, NULL, NULL, NULL, NULL, d.id FROM ({current_sql}) d
            WHERE d.senior_id NOT IN (SELECT o.senior_id FROM ({outcome_sql}) o)"""  # noqa: S608 - names from model metadata, values are parameters
        changes_params = [
            *outcome_params, True, *scope_params, policy.pk, True, *scope_params, *outcome_params
        ]  # fmt: skip
    with connection.cursor() as cursor:
        if postgres:
            # A whole-city run excludes every other evaluation until it commits; evaluations of
            # a few seniors (an edit, an import batch) share the lock. Otherwise an edit during a
            # city run would end the same current row and insert a second current one, and fail
            # on the one-current-per-senior index after waiting for the run.
            lock = "pg_advisory_xact_lock" if senior_ids is None else "pg_advisory_xact_lock_shared"
            cursor.execute(f"SELECT {lock}(%s)", [EVALUATION_LOCK])
            if senior_ids is not None:
                # Two evaluations of the same senior (an edit and an import batch, two taps) take
                # turns: each would end the same current row and insert its own.
                cursor.execute(
                    f"SELECT id FROM {Senior._meta.db_table} WHERE id IN ({', '.join(['%s'] * len(ids))})"  # noqa: S608 - names from model metadata, values are parameters
                    " ORDER BY id FOR UPDATE",
                    ids,
                )
        # pg_temp: never a permanent table of that name on the search path
        cursor.execute(f"DROP TABLE IF EXISTS {'pg_temp.' if postgres else ''}{OUTCOME_TABLE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {OUTCOME_TABLE} AS {changes_sql}", changes_params)
        if postgres:
            cursor.execute(f"ANALYZE {OUTCOME_TABLE}")  # few rows or many: the next plans depend on it
        progress(1, EVALUATION_STEPS)

        # Seniors in scope with no outcome any more lose their current determination.
        retired = _execute(
            cursor,
            f"""UPDATE {determination} SET is_current = %s WHERE is_current = %s AND id IN (
                SELECT c.current_id FROM {OUTCOME_TABLE} c WHERE c.senior_id IS NULL)""",  # noqa: S608 - names from model metadata, values are parameters
            [False, True],
        )
        progress(2, EVALUATION_STEPS)
        # Where the outcome changed, the current determination ends ...
        _execute(
            cursor,
            f"""UPDATE {determination} SET is_current = %s WHERE is_current = %s AND id IN (
                SELECT c.current_id FROM {OUTCOME_TABLE} c
                WHERE c.senior_id IS NOT NULL AND c.current_id IS NOT NULL)""",  # noqa: S608 - names from model metadata, values are parameters
            [False, True],
        )
        progress(3, EVALUATION_STEPS)
        # ... and a new one begins, as does the first of a senior who had none.
        ops = connection.ops
        changed = _execute(
            cursor,
            f"""INSERT INTO {determination} (
                    senior_id, policy_id, tier_id, care_visit_class, matched_rules, override_id,
                    as_of, is_current, determined_at, determined_by_id, determined_by_job)
                SELECT c.senior_id, %s, c.tier_id, c.care, c.matched, c.override_id, %s, %s, %s, %s, %s
                FROM {OUTCOME_TABLE} c WHERE c.senior_id IS NOT NULL""",  # noqa: S608 - names from model metadata, values are parameters
            [
                policy.pk,
                ops.adapt_datefield_value(as_of),
                True,
                ops.adapt_datetimefield_value(timezone.now()),
                determined_by.pk if determined_by is not None else None,
                job[:80],
            ],
        )
        progress(4, EVALUATION_STEPS)
        cursor.execute(f"DROP TABLE {OUTCOME_TABLE}")
        # Every senior in scope with an outcome now has exactly one current determination (and
        # no one else does), so counting them counts the outcomes.
        cursor.execute(
            f"SELECT COUNT(*) FROM {determination} d WHERE d.is_current = %s{in_scope}",  # noqa: S608 - names from model metadata, values are parameters
            [True, *scope_params],
        )
        evaluated = cursor.fetchone()[0]
    if senior_ids is None and record_run:
        EvaluationRun.objects.create(
            as_of=as_of,
            policy=policy,
            state=EvaluationRun.State.DONE,
            started_by=determined_by,
            job=job[:80],
            evaluated=evaluated,
            changed=changed,
            retired=retired,
            finished_at=timezone.now(),
        )
    progress(5, EVALUATION_STEPS)
    return EvaluationResult(as_of=as_of, policy=policy, evaluated=evaluated, changed=changed, retired=retired)


# --- Policies: drafts, activation, overrides, evaluation runs ----------------------------------

POLICY_FIELDS = ("name", "name_en", "population", "carry_over_unused")
SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,40}$")
TIER_FIELDS = ("code", "name", "name_en", "rank", "government_share_rate", "monthly_face_value")
RULE_FIELDS = ("code", "label", "label_en", "tier", "care_visit_class", "condition")


def _require(user, permission: str, message) -> None:
    if user is not None and not user.has_perm(permission):
        raise EligibilityError("not_permitted", message)


def _draft(policy: Policy) -> Policy:
    """The policy if it is still a draft, its row locked until the write commits (an activation
    at the same moment waits, then finds it published), else `policy_published`."""
    locked = Policy.objects.select_for_update().filter(pk=policy.pk).values_list("status", flat=True).first()
    if locked is not None:
        policy.status = locked
    if not policy.is_draft:
        raise EligibilityError(
            "policy_published",
            _("Version %(version)s of %(code)s is published and fixed; copy it to a draft to change it."),
            version=policy.version,
            code=policy.code,
        )
    return policy


def _valid_condition(condition, *, field: str = "condition") -> dict:
    try:
        return conditions.validate(condition)
    except conditions.ConditionError as error:
        raise EligibilityError("invalid_condition", "%(detail)s", field=field, detail=error.detail) from None


@transaction.atomic
def copy_policy(*, policy: Policy, by, code: str | None = None, name: str | None = None) -> Policy:
    """A new draft from `policy` (any status): its tiers and rules copied, the next version of
    the same code, or version 1 of a new `code`. Refuses `draft_exists` when the code already has
    a draft (one at a time per code, so `--draft CODE` names one)."""
    _require(by, "eligibility.add_policy", _("You may not draft policies."))
    code = (code or policy.code).strip()
    if not SLUG.match(code):
        raise EligibilityError(
            "invalid_input",
            _("A policy code is letters, digits, hyphens and underscores, such as default-2027."),
            field="code",
        )
    if Policy.objects.filter(code=code, status=Policy.Status.DRAFT).exists():
        raise EligibilityError(
            "draft_exists", _("%(code)s already has a draft; edit that one or delete it first."), code=code
        )
    version = (
        Policy.objects.filter(code=code).order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    try:
        with transaction.atomic():
            draft = Policy.objects.create(
                code=code,
                version=version,
                name=(name or policy.name).strip(),
                name_en=policy.name_en,
                status=Policy.Status.DRAFT,
                population=policy.population,
                carry_over_unused=policy.carry_over_unused,
                based_on=policy,
                created_by=by,
            )
    except IntegrityError:  # a copy of the same code at the same moment won
        raise EligibilityError(
            "draft_exists", _("%(code)s already has a draft; edit that one or delete it first."), code=code
        ) from None
    tiers = {}
    for tier in policy.tiers.all():
        tiers[tier.pk] = Tier.objects.create(
            policy=draft, **{name: getattr(tier, name) for name in TIER_FIELDS}
        )
    PolicyRule.objects.bulk_create(
        PolicyRule(
            policy=draft,
            code=rule.code,
            label=rule.label,
            label_en=rule.label_en,
            tier=tiers.get(rule.tier_id),
            care_visit_class=rule.care_visit_class,
            condition=rule.condition,
        )
        for rule in policy.rules.all()
    )
    return draft


def _saved(instance, *, message_field: str = ""):
    try:
        with transaction.atomic():
            instance.full_clean(validate_unique=True, validate_constraints=True)
            instance.save()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        field = None if field == "__all__" else field
        raise EligibilityError(
            "invalid_input", "%(detail)s", field=field or message_field or None, detail=" ".join(messages)
        ) from None
    return instance


@transaction.atomic
def update_draft(*, policy: Policy, by, **values) -> Policy:
    """Change a draft's name, English name, population condition or carry-over option."""
    _require(by, "eligibility.change_policy", _("You may not edit policies."))
    _draft(policy)
    if "population" in values:
        values["population"] = _valid_condition(values["population"], field="population")
    for name in POLICY_FIELDS:
        if name in values:
            setattr(policy, name, values[name])
    return _saved(policy)


@transaction.atomic
def save_tier(*, policy: Policy, by, tier: Tier | None = None, **values) -> Tier:
    """Add a tier to a draft or change one of its tiers (code, names, rank, share rate, face value)."""
    _require(by, "eligibility.change_tier", _("You may not edit policies."))
    _draft(policy)
    tier = tier or Tier(policy=policy)
    if tier.policy_id != policy.pk:
        raise EligibilityError("not_found", _("That tier is not part of this policy."))
    for name in TIER_FIELDS:
        if name in values:
            setattr(tier, name, values[name])
    return _saved(tier)


@transaction.atomic
def delete_tier(*, tier: Tier, by) -> None:
    _require(by, "eligibility.change_tier", _("You may not edit policies."))
    _draft(tier.policy)
    if tier.rules.exists():
        raise EligibilityError("tier_in_use", _("Rules still grant this tier: change or delete them first."))
    tier.delete()


@transaction.atomic
def save_rule(*, policy: Policy, by, rule: PolicyRule | None = None, **values) -> PolicyRule:
    """Add a rule to a draft or change one: code, labels, what it grants (a tier of this policy
    or a care-visit class) and its condition, validated (`invalid_condition` says where)."""
    _require(by, "eligibility.change_policyrule", _("You may not edit policies."))
    _draft(policy)
    rule = rule or PolicyRule(policy=policy)
    if rule.policy_id != policy.pk:
        raise EligibilityError("not_found", _("That rule is not part of this policy."))
    if "condition" in values:
        values["condition"] = _valid_condition(values["condition"])
    tier = values.get("tier")
    if tier is not None and tier.policy_id != policy.pk:
        raise EligibilityError("invalid_input", _("A rule grants a tier of its own policy."), field="tier")
    for name in RULE_FIELDS:
        if name in values:
            setattr(rule, name, values[name] if values[name] is not None or name == "tier" else "")
    if rule.tier_id is None and not rule.care_visit_class:
        raise EligibilityError(
            "invalid_input", _("A rule grants a tier or a care-visit class."), field="tier"
        )
    if rule.tier_id is not None and rule.care_visit_class:
        raise EligibilityError(
            "invalid_input",
            _("A rule grants a tier or a care-visit class, not both."),
            field="care_visit_class",
        )
    return _saved(rule)


@transaction.atomic
def delete_rule(*, rule: PolicyRule, by) -> None:
    _require(by, "eligibility.delete_policyrule", _("You may not edit policies."))
    _draft(rule.policy)
    rule.delete()


@transaction.atomic
def delete_draft(*, policy: Policy, by) -> None:
    _require(by, "eligibility.change_policy", _("You may not edit policies."))
    _draft(policy)
    policy.rules.all().delete()
    policy.tiers.all().delete()
    policy.delete()


@transaction.atomic
def activate_policy(*, policy: Policy, effective_from: dt.date, by, today: dt.date | None = None) -> Policy:
    """Publish a draft from `effective_from` (today or later): the version in force then is
    retired the day before, and from then on neither can change. Past determinations, vouchers
    and redemptions keep what they were decided and priced at (they hold their own tier rows).

    Refuses `policy_published` (not a draft), `invalid_input` (a date in the past, a draft with no
    tier or rule), `policy_overlap` (a published version starts on or after that date).
    """
    _require(by, "eligibility.activate_policy", _("You may not activate policies."))
    policy = Policy.objects.select_for_update().get(pk=policy.pk)
    _draft(policy)
    today = today or local_date(timezone.now())
    if effective_from < today:
        raise EligibilityError(
            "invalid_input",
            _("A policy can be activated from today or a later date, not %(date)s."),
            field="effective_from",
            date=effective_from.isoformat(),
        )
    if not policy.tiers.exists() or not policy.rules.filter(tier__isnull=False).exists():
        raise EligibilityError(
            "invalid_input", _("A policy needs at least one tier and a rule that grants it.")
        )
    # Every condition is checked again: one may have been stored by another way than save_rule
    # (the admin), and a published policy cannot be corrected.
    if policy.population:
        _valid_condition(policy.population, field="population")
    for rule in policy.rules.all():
        try:
            conditions.validate(rule.condition)
        except conditions.ConditionError as error:
            raise EligibilityError(
                "invalid_condition",
                "%(rule)s: %(detail)s",
                field="condition",
                rule=rule.code,
                detail=error.detail,
            ) from None
    published = Policy.objects.select_for_update().exclude(status=Policy.Status.DRAFT)
    # Lock every published version first (waiting for a concurrent activation to commit), then
    # decide on what is committed: the checks below read afresh after the wait.
    list(published.order_by("pk"))
    later = published.filter(effective_from__gte=effective_from).order_by("effective_from").first()
    if later is not None:
        raise EligibilityError(
            "policy_overlap",
            _("%(policy)s is already scheduled from %(date)s; a new version must start after it."),
            policy=str(later),
            date=later.effective_from.isoformat(),
        )
    replaced = (
        published.filter(effective_from__lt=effective_from)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gte=effective_from))
        .first()
    )
    if replaced is not None:
        replaced.effective_until = effective_from - dt.timedelta(days=1)
        replaced.status = Policy.Status.RETIRED
        replaced.save(update_fields=["effective_until", "status"])
    policy.status = Policy.Status.ACTIVE
    policy.effective_from = effective_from
    policy.effective_until = None
    policy.activated_at = timezone.now()
    policy.activated_by = by
    try:
        with transaction.atomic():
            policy.save(
                update_fields=["status", "effective_from", "effective_until", "activated_at", "activated_by"]
            )
    except IntegrityError:  # the database's one-in-force-per-date, should a race get this far
        raise EligibilityError(
            "policy_overlap", _("Another version is already in force from that date."), field="effective_from"
        ) from None
    return policy


REPLACED_OVERRIDE = "replaced"  # the end reason of a manual tier a newer one replaced


@transaction.atomic
def set_tier_override(
    *, senior: Senior, tier_code: str, reason: str, expires_on: dt.date, by
) -> TierOverride:
    """A worker's manual tier for one senior until `expires_on`, with a reason; it replaces an
    open one, and the senior is evaluated at once. Refuses `invalid_input` for an unknown tier,
    a missing reason, or an expiry in the past or more than a year ahead."""
    wait_for_city_evaluation()
    senior = Senior.objects.select_for_update().get(pk=senior.pk)  # one manual tier at a time
    _require(by, "eligibility.add_tieroverride", _("You may not set a manual tier."))
    today = local_date(timezone.now())
    policy = policy_in_force(as_of=today)
    if policy is None or not policy.tiers.filter(code=tier_code).exists():
        raise EligibilityError("invalid_input", _("Choose a tier of the policy in force."), field="tier_code")
    reason = normalise_text(reason or "")
    if not reason:
        raise EligibilityError("invalid_input", _("Say why the senior gets this tier."), field="reason")
    if not today <= expires_on <= today + dt.timedelta(days=366):
        raise EligibilityError(
            "invalid_input", _("A manual tier expires within a year from today."), field="expires_on"
        )
    _end_open_override(senior=senior, by=by, reason=REPLACED_OVERRIDE)
    override = TierOverride.objects.create(
        senior=senior,
        tier_code=tier_code,
        reason=reason[:300],
        starts_on=today,
        expires_on=expires_on,
        created_by=by,
    )
    reevaluate_seniors(senior_ids=[senior.pk], by=by)
    return override


def _end_open_override(*, senior: Senior, by, reason: str) -> int:
    return TierOverride.objects.filter(senior=senior, ended_at__isnull=True).update(
        ended_at=timezone.now(), ended_by=by, end_reason=reason[:300]
    )


@transaction.atomic
def end_tier_override(*, senior: Senior, by, reason: str) -> int:
    """End a senior's open manual tier now; the rules decide again at once."""
    wait_for_city_evaluation()
    senior = Senior.objects.select_for_update().get(pk=senior.pk)  # one manual tier at a time
    _require(by, "eligibility.change_tieroverride", _("You may not end a manual tier."))
    reason = normalise_text(reason or "")
    if not reason:
        raise EligibilityError("invalid_input", _("Say why the manual tier ends."), field="end_reason")
    ended = _end_open_override(senior=senior, by=by, reason=reason)
    if ended:
        reevaluate_seniors(senior_ids=[senior.pk], by=by)
    return ended


EVALUATION_PROGRESS_SECONDS = 24 * 3600


def start_evaluation(*, as_of: dt.date, by=None, job: str = "") -> EvaluationRun:
    """Queue an evaluation of the whole registry (Celery `tasks.run_evaluation`) once this
    transaction commits; the page follows it with `selectors.evaluation_progress`."""
    if by is not None:
        _require(by, "eligibility.add_evaluationrun", _("You may not run an evaluation."))
    if policy_in_force(as_of=as_of) is None:
        raise EligibilityError("no_policy", _("No policy is in force on %(date)s."), date=as_of.isoformat())
    run = EvaluationRun.objects.create(as_of=as_of, started_by=by, job=job[:80])
    from eligibility.tasks import run_evaluation  # the tasks module imports this one

    # Through the outbox: with the broker down the run stays queued (the page says why) and
    # starts when the broker is back.
    outbox.enqueue(run_evaluation, run.pk)
    return run


def finish_evaluation(*, run_id: int) -> EvaluationRun:
    """Run a queued evaluation: the body of `tasks.run_evaluation`. Its progress goes to the
    cache (the evaluation is one transaction, invisible until it commits); its outcome, or the
    reason it failed, to the run."""
    run = EvaluationRun.objects.get(pk=run_id)
    # Taken by one worker only: a task the outbox sent twice (a rare crash) finds it taken.
    if not EvaluationRun.objects.filter(pk=run.pk, state=EvaluationRun.State.QUEUED).update(
        state=EvaluationRun.State.RUNNING
    ):
        return run
    key = evaluation_progress_key(run.pk)

    def progress(step, steps):
        record_progress(
            key,
            {"done": step, "total": steps},
            seconds=EVALUATION_PROGRESS_SECONDS,
            log=_log,
            what=f"evaluation {run.pk}",
        )

    try:
        result = evaluate_eligibility(
            as_of=run.as_of, determined_by=run.started_by, job=run.job, progress=progress, record_run=False
        )
    except Exception as error:
        _log.exception("evaluation %s failed", run.pk)
        detail = error.detail if isinstance(error, EligibilityError) else error.__class__.__name__
        EvaluationRun.objects.filter(pk=run.pk).update(
            state=EvaluationRun.State.FAILED, error=str(detail)[:300], finished_at=timezone.now()
        )
        # The run says it failed, and why; the log has the traceback. Not raised again: with
        # tasks inline (no broker) it would turn the bureau's page into an error page.
        run.refresh_from_db()
        return run
    EvaluationRun.objects.filter(pk=run.pk).update(
        state=EvaluationRun.State.DONE,
        policy=result.policy,
        evaluated=result.evaluated,
        changed=result.changed,
        retired=result.retired,
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


_log = logging.getLogger("eligibility.evaluation")


# --- Registry imports: the job around `eligibility.importer.run_import` ------------------------

_import_log = logging.getLogger("eligibility.import")
IMPORT_PROGRESS_SECONDS = 24 * 3600  # how long the cache keeps a job's progress


def record_progress(key: str, value, *, seconds: int, log, what: str) -> None:
    """Keep a running job's progress in the cache for the page's bar (`selectors.cached_progress`
    reads it). The cache may be Redis: its failure is logged and never fails the job."""
    # Any cache failure: the job goes on without a progress bar (config.resilience logs it).
    cache_call(f"progress of {what.split()[0]}", lambda: cache.set(key, value, seconds), default=None)


def record_import_progress(*, job_id: int, done: int, total: int) -> None:
    """Keep (done, total) of an import for the page's progress bar."""
    record_progress(
        import_progress_key(job_id),
        (done, total),
        seconds=IMPORT_PROGRESS_SECONDS,
        log=_import_log,
        what=f"import {job_id}",
    )


@transaction.atomic
def start_import(*, data: bytes, filename: str, user, dry_run: bool) -> ImportJob:
    """Keep an uploaded workbook as an ImportJob and import it (`importer.run_import`).

    Up to `importer.INLINE_LIMIT` rows (counted cheaply, without reading the cells) it is
    imported at once and the job comes back finished: `done`, `checked` (a dry run) or `failed`
    with its report. Larger files come back `queued`; a Celery worker (`tasks.run_import_job`)
    takes the job once this transaction commits, and `selectors.import_progress` follows it.
    Refuses `not_permitted` without the `import_seniors` permission (nothing is kept then).
    """
    from eligibility import importer  # it builds on this module's rules

    if not user.has_perm("eligibility.import_seniors"):
        raise EligibilityError("not_permitted", _("You may not import seniors."))
    job = ImportJob.objects.create(
        created_by=user,
        filename=(filename or "")[:200],
        dry_run=dry_run,
        workbook=data,
        total_rows=importer.count_rows(data),
    )
    if job.total_rows <= importer.INLINE_LIMIT:
        return finish_import_job(job_id=job.pk)
    from eligibility.tasks import run_import_job  # the tasks module imports this one

    outbox.enqueue(run_import_job, job.pk)  # sent on commit, or when the broker is back
    return job


def confirm_import(*, job: ImportJob, user) -> ImportJob:
    """Import for real a workbook that a dry run found without problems: one tap instead of a
    second upload. The rows are checked again (the registry may have changed since), all or none.
    Refuses `invalid_input` for a job that is not a successful check, `not_permitted` for
    another user's job or without the import permission."""
    if job.created_by_id != user.pk:
        raise EligibilityError("not_permitted", _("Only the person who checked this workbook can import it."))
    if job.state != ImportJob.State.CHECKED:
        raise EligibilityError(
            "invalid_input", _("Only a workbook checked without problems can be imported.")
        )
    return start_import(data=bytes(job.workbook), filename=job.filename, user=user, dry_run=False)


def finish_import_job(*, job_id: int) -> ImportJob:
    """Run a queued import and store its report: the body of `tasks.run_import_job`.

    Marks the job `running` (committed at once, for the page), then in one transaction locks the
    job, imports (every row or none), and stores the state, the report with every message in
    zh-Hans and English, and the annotated workbook of a refused file. A job already finished
    (a task delivered twice) is returned as it is; the import itself is idempotent anyway.
    """
    from eligibility import importer  # it builds on this module's rules

    ImportJob.objects.filter(pk=job_id, state=ImportJob.State.QUEUED).update(state=ImportJob.State.RUNNING)
    started = timezone.now()
    try:
        with transaction.atomic():
            job = (
                ImportJob.objects.select_for_update(of=("self",))
                .select_related("created_by")
                .defer("workbook")
                .get(pk=job_id)
            )
            if job.state not in (ImportJob.State.QUEUED, ImportJob.State.RUNNING):
                return job
            # One copy of the workbook in memory while it is read (the import's peak is there).
            report = importer.run_import(
                data=_stored_workbook(job_id),
                user=job.created_by,
                dry_run=job.dry_run,
                progress=lambda done, total: record_import_progress(job_id=job_id, done=done, total=total),
            )
            if not report.ok:
                job.state = ImportJob.State.FAILED
            else:
                job.state = ImportJob.State.CHECKED if job.dry_run else ImportJob.State.DONE
            _finish_job(job, report)
    except Exception:
        # Nothing was imported (the transaction rolled back); the page must not wait forever.
        _import_log.exception("import %s failed unexpectedly; nothing was imported", job_id)
        job = ImportJob.objects.get(pk=job_id)
        job.state = ImportJob.State.FAILED
        failure = importer.RowError(
            row=0,
            column="",
            code="import_failed",
            message=_(
                "The import stopped on an unexpected error, and nothing was imported. Please try again."
            ),
        )
        _finish_job(job, importer.ImportReport(ok=False, dry_run=job.dry_run, errors=[failure]))
    if job.state == ImportJob.State.DONE:
        evaluate_imported_seniors(since=started, by=job.created_by)
    return job


WORKBOOK_CHUNK = 1 << 20


def _stored_workbook(job_id: int) -> bytes:
    """The job's workbook, read from the database a megabyte at a time: fetched whole, a 13 MB
    upload would pass through about 70 MB of driver buffers (PostgreSQL sends bytea as hex) just
    before the import's own peak, and the job would need 415 MB instead of 380 (bench/README.md)."""
    table = connection.ops.quote_name(ImportJob._meta.db_table)
    if connection.vendor == "postgresql":
        length_sql, part_sql = "octet_length(workbook)", "substring(workbook FROM %s FOR %s)"
    else:
        length_sql, part_sql = "length(workbook)", "substr(workbook, %s, %s)"
    data = bytearray()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {length_sql} FROM {table} WHERE id = %s", [job_id])  # noqa: S608
        (length,) = cursor.fetchone()
        for start in range(1, (length or 0) + 1, WORKBOOK_CHUNK):
            cursor.execute(f"SELECT {part_sql} FROM {table} WHERE id = %s", [start, WORKBOOK_CHUNK, job_id])  # noqa: S608
            data += cursor.fetchone()[0]
    return bytes(data)


def _finish_job(job: ImportJob, report) -> None:
    """Store the job's outcome. The uploaded workbook is kept only while it may still be
    imported (a clean check, for "import it now"): it holds ID-card numbers and phones."""
    job.total_rows = report.total_rows or job.total_rows
    job.report = report.to_json()
    job.annotated_workbook = report.annotated_workbook
    job.finished_at = timezone.now()
    fields = ["state", "total_rows", "report", "annotated_workbook", "finished_at"]
    if job.state != ImportJob.State.CHECKED:
        job.workbook = b""
        fields.append("workbook")
    job.save(update_fields=fields)


EVALUATE_BATCH = 1000


def evaluate_imported_seniors(*, since: dt.datetime, by) -> int:
    """Evaluate the seniors an import created or changed since `since` (their history says which),
    so the registry shows their tier at once, as it does for one registered by hand. In batches,
    each its own transaction, after the import committed. Returns how many were evaluated."""
    touched = (
        Senior.history.filter(history_change_reason="import", history_date__gte=since)
        .values_list("id", flat=True)
        .distinct()
        .order_by("id")
    )
    ids = list(touched)
    for start in range(0, len(ids), EVALUATE_BATCH):
        reevaluate_seniors(senior_ids=ids[start : start + EVALUATE_BATCH], by=by)
    return len(ids)


@transaction.atomic
def set_community_contact(*, community: Region, name: str, phone: str, by) -> Region:
    """Whom the community's seniors call (社区联系人): printed on their cards and shown on their
    voucher pages. The phone is normalised like the seniors' (0571-87061234). Logged in the
    action log (who, when, what). Refuses: `not_permitted` (a community the user may not keep),
    `invalid_input` (a name over 50 characters), `invalid_phone`."""
    from django.contrib.admin.models import CHANGE, LogEntry

    from eligibility.selectors import may_set_community_contact

    if by is not None and not may_set_community_contact(by, community):
        raise EligibilityError("not_permitted", _("You may not change this community's contact."))
    name = " ".join((name or "").split())
    if len(name) > 50:
        raise EligibilityError(
            "invalid_input", _("Please write at most %(max)s characters."), field="name", max=50
        )
    phone = normalise_phone(phone, field="phone")
    community = Region.objects.select_for_update().get(pk=community.pk)
    changed = [
        field
        for field, value in (("contact_name", name), ("contact_phone", phone))
        if getattr(community, field) != value
    ]
    if changed:
        community.contact_name, community.contact_phone = name, phone
        community.save(update_fields=changed)
        if by is not None:
            LogEntry.objects.log_actions(
                user_id=by.pk,
                queryset=[community],
                action_flag=CHANGE,
                change_message=[{"changed": {"fields": changed}}],
                single_object=True,
            )
    return community
