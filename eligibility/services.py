"""Writes of the eligibility app: the registry, the default policy, and evaluation."""

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from config.months import local_date
from config.roles import OFFICER, WORKER, roles_of
from eligibility import rules
from eligibility.errors import EligibilityError
from eligibility.models import (
    Determination,
    ImportJob,
    Policy,
    PolicyRule,
    Region,
    RegionScope,
    Senior,
    Tier,
)
from eligibility.names import name_initials
from eligibility.normalise import (
    birth_date_of,
    normalise_id_card_number,
    normalise_phone,
    normalise_text,
    sex_of,
)
from eligibility.rules import aged_at_least
from eligibility.selectors import import_progress_key, policy_in_force
from eligibility.signals import senior_left

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


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


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
    nothing when no policy is in force yet (a new install). Their vouchers keep their terms."""
    today = local_date(timezone.now())
    if not senior_ids or policy_in_force(as_of=today) is None:
        return None
    return evaluate_eligibility(as_of=today, determined_by=by, senior_ids=senior_ids)


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


DEFAULT_TIERS = [
    # code, name, English name, rank, government share rate, monthly face value
    ("subsidized", "无偿", "Subsidized", 1, Decimal("1.0000"), Decimal("300.00")),
    ("low_fee", "低偿", "Low fee", 2, Decimal("0.7000"), Decimal("200.00")),
    ("paid", "有偿", "Paid", 3, Decimal("0.0000"), Decimal("0.00")),
]
DEFAULT_RULE_TIERS = {
    "subsidized_70_dependent_no_children_dibao": "subsidized",
    "subsidized_special_care": "subsidized",
    "subsidized_three_no": "subsidized",
    "subsidized_five_old": "subsidized",
    "subsidized_centenarian": "subsidized",
    "low_fee_empty_nest_dependent": "low_fee",
    "low_fee_80_empty_nest_no_assistance": "low_fee",
    "low_fee_hardship": "low_fee",
    "paid_resident": "paid",
}


@transaction.atomic
def ensure_default_policy(*, effective_from: dt.date = dt.date(2025, 1, 1)) -> Policy:
    """The default policy of DESIGN.md §4.1–4.2, created once; returns the existing one after."""
    policy, created = Policy.objects.get_or_create(
        code="default", version=1, defaults={"name": "居家养老服务默认政策", "effective_from": effective_from}
    )
    if not created:
        return policy
    tiers = {}
    for code, name, name_en, rank, rate, face_value in DEFAULT_TIERS:
        tiers[code] = Tier.objects.create(
            policy=policy,
            code=code,
            name=name,
            name_en=name_en,
            rank=rank,
            government_share_rate=rate,
            monthly_face_value=Money(face_value, "CNY"),
        )
    PolicyRule.objects.bulk_create(
        PolicyRule(policy=policy, code=code, tier=tiers[tier_code], description=str(rules.describe(code)))
        for code, tier_code in DEFAULT_RULE_TIERS.items()
    )
    return policy


@dataclass(frozen=True)
class EvaluationResult:
    as_of: dt.date
    policy: Policy
    evaluated: int
    changed: int
    retired: int


CHUNK = 50_000
BATCH = 2_000


def _outcomes_for_chunk(seniors, policy_rules, as_of):
    """{senior_id: (tier, care class, matched codes)} for the seniors of one id range."""
    matched: dict[int, list[str]] = defaultdict(list)
    best_tier: dict[int, Tier] = {}
    for policy_rule in policy_rules:
        rule = rules.TIER_RULES.get(policy_rule.code)
        if rule is None:
            raise EligibilityError(
                "unknown_rule", _("The policy refers to an unknown rule %(code)s."), code=policy_rule.code
            )
        for senior_id in seniors.filter(rule.condition(as_of)).values_list("id", flat=True):
            matched[senior_id].append(rule.code)
            held = best_tier.get(senior_id)
            if held is None or policy_rule.tier.rank < held.rank:
                best_tier[senior_id] = policy_rule.tier
    care_class: dict[int, str] = {}
    for visit_class, class_rules in rules.CARE_VISIT_RULES.items():
        for rule in class_rules:
            for senior_id in seniors.filter(rule.condition(as_of)).values_list("id", flat=True):
                matched[senior_id].append(rule.code)
                care_class.setdefault(senior_id, visit_class)
    return {
        senior_id: (tier, care_class.get(senior_id, ""), sorted(matched[senior_id]))
        for senior_id, tier in best_tier.items()
    }


def _evaluation_chunks(qualifying, senior_ids):
    """(the chunk's seniors, the filter of their determinations): the city by id ranges of
    CHUNK; given seniors by lists of BATCH ids, so evaluating one senior reads one senior's rows."""
    if senior_ids is not None:
        ids = sorted(set(senior_ids))
        for i in range(0, len(ids), BATCH):
            part = ids[i : i + BATCH]
            yield qualifying.filter(id__in=part), Q(senior_id__in=part)
        return
    bounds = qualifying.order_by("id").values_list("id", flat=True)
    first, last = bounds.first(), bounds.last()
    start = first or 0
    while first is not None and start <= last:
        yield (
            qualifying.filter(id__gte=start, id__lt=start + CHUNK),
            Q(senior_id__gte=start, senior_id__lt=start + CHUNK),
        )
        start += CHUNK


@transaction.atomic
def evaluate_eligibility(
    *, as_of: dt.date, determined_by=None, senior_ids: list[int] | None = None
) -> EvaluationResult:
    """Evaluate every active senior aged 60+ (or the given ones) against the policy in force.

    Set-based: one query per rule per id range, then bulk writes. A new determination is written
    only when the outcome (policy, tier, care-visit class, matched rules) changes; the previous
    one stops being current. Seniors who no longer qualify (moved away, deceased, no rule
    matches) lose their current determination. Refuses `no_policy` when none is in force.
    """
    policy = policy_in_force(as_of=as_of)
    if policy is None:
        raise EligibilityError("no_policy", _("No policy is in force on %(date)s."), date=as_of.isoformat())
    policy_rules = list(policy.rules.select_related("tier"))
    scope = Senior.objects.all()
    if senior_ids is not None:
        scope = scope.filter(id__in=senior_ids)
    qualifying = scope.filter(aged_at_least(60, as_of), status=Senior.Status.ACTIVE)

    evaluated = changed = 0
    qualifying_ids: set[int] = set()
    for chunk, of_chunk in _evaluation_chunks(qualifying, senior_ids):
        outcomes = _outcomes_for_chunk(chunk, policy_rules, as_of)
        qualifying_ids.update(outcomes)
        current = {
            row["senior_id"]: (
                row["policy_id"],
                row["tier_id"],
                row["care_visit_class"],
                row["matched_rules"],
            )
            for row in Determination.objects.filter(of_chunk, is_current=True).values(
                "senior_id", "policy_id", "tier_id", "care_visit_class", "matched_rules"
            )
        }
        new_rows = [
            Determination(
                senior_id=senior_id,
                policy=policy,
                tier=tier,
                care_visit_class=care,
                matched_rules=codes,
                as_of=as_of,
                determined_by=determined_by,
            )
            for senior_id, (tier, care, codes) in outcomes.items()
            if current.get(senior_id) != (policy.pk, tier.pk, care, codes)
        ]
        changed_ids = [row.senior_id for row in new_rows]
        for i in range(0, len(changed_ids), BATCH):
            Determination.objects.filter(is_current=True, senior_id__in=changed_ids[i : i + BATCH]).update(
                is_current=False
            )
        Determination.objects.bulk_create(new_rows, batch_size=BATCH)
        evaluated += len(outcomes)
        changed += len(new_rows)

    stale = Determination.objects.filter(is_current=True, senior__in=scope)
    retired = 0
    # Anyone in scope with a current determination who no longer qualifies loses it.
    stale_ids = [sid for sid in stale.values_list("senior_id", flat=True) if sid not in qualifying_ids]
    for i in range(0, len(stale_ids), BATCH):
        retired += stale.filter(senior_id__in=stale_ids[i : i + BATCH]).update(is_current=False)
    return EvaluationResult(as_of=as_of, policy=policy, evaluated=evaluated, changed=changed, retired=retired)


# --- Registry imports: the job around `eligibility.importer.run_import` ------------------------

_import_log = logging.getLogger("eligibility.import")
IMPORT_PROGRESS_SECONDS = 24 * 3600  # how long the cache keeps a job's progress


def record_import_progress(*, job_id: int, done: int, total: int) -> None:
    """Keep (done, total) in the cache for the page's progress bar. The cache may be Redis: its
    failure is logged and never fails the import."""
    try:
        cache.set(import_progress_key(job_id), (done, total), IMPORT_PROGRESS_SECONDS)
    except Exception:  # any cache failure: the import goes on without a progress bar
        _import_log.warning("import %s: progress could not be written to the cache", job_id, exc_info=True)


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

    transaction.on_commit(lambda: run_import_job.delay(job.pk))
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
