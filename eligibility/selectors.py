"""Reads of the eligibility app."""

import contextlib
import datetime as dt
import logging
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import F, FilteredRelation, Q, QuerySet, Value
from django.db.models.functions import Replace
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from config.months import first_day, next_month
from config.resilience import cache_call
from config.roles import BUREAU, REGION_ROLES, roles_of
from eligibility import conditions
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
from eligibility.normalise import normalise_id_card_number, normalise_text


def policy_in_force(*, as_of: dt.date) -> Policy | None:
    """The published policy effective on `as_of` (the database keeps to one per date)."""
    return (
        Policy.objects.exclude(status=Policy.Status.DRAFT)
        .filter(effective_from__lte=as_of)
        .filter(Q(effective_until__isnull=True) | Q(effective_until__gte=as_of))
        .order_by("-effective_from", "-version")
        .first()
    )


def current_determination(*, senior) -> Determination | None:
    return (
        Determination.objects.select_related("tier", "policy").filter(senior=senior, is_current=True).first()
    )


# --- Who may see and change what (DESIGN.md §8) ---------------------------------------------------


def scope_region(user) -> Region | None:
    """The region a user works in (eligibility.RegionScope), read once per user object."""
    if not user.is_authenticated:
        return None
    if not hasattr(user, "_region_scope"):
        scope = RegionScope.objects.select_related("region").filter(user=user).first()
        user._region_scope = scope.region if scope else None
    return user._region_scope


def sees_whole_city(user) -> bool:
    """Superusers, and bureau administrators with no narrower region set."""
    return user.is_superuser or (BUREAU in roles_of(user) and scope_region(user) is None)


def regions_visible_to(user) -> QuerySet[Region]:
    """The regions a user's registry work covers: all for the city, else their scope's subtree."""
    if not user.is_authenticated:
        return Region.objects.none()
    if sees_whole_city(user):
        return Region.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Region.objects.none()
    return Region.objects.filter(path__startswith=region.path)


def communities_visible_to(user) -> QuerySet[Region]:
    return regions_visible_to(user).filter(level=Region.Level.COMMUNITY).order_by("path")


def visible_to(user) -> QuerySet[Senior]:
    """The seniors a user may see: the one decision every page, export, API and admin uses.

    The bureau sees the city; an officer their subdistrict or district; a worker their community;
    everyone else (providers, staff, finance) no registry at all: a scanner sees a voucher's
    masked name through the vouchers app instead.
    """
    if not user.is_authenticated or not user.has_perm("eligibility.view_senior"):
        return Senior.objects.none()
    if sees_whole_city(user):
        return Senior.objects.all()
    region = scope_region(user)
    if region is None or not REGION_ROLES.intersection(roles_of(user)):
        return Senior.objects.none()
    return Senior.objects.filter(community__path__startswith=region.path)


def can_register_in(user, community: Region) -> bool:
    """Whether a user may register (or import) seniors into a community: bureau and workers."""
    return (
        user.has_perm("eligibility.add_senior") and regions_visible_to(user).filter(pk=community.pk).exists()
    )


def can_change(user, senior: Senior) -> bool:
    """Whether a user may edit this senior: the change permission (officers are read-only)
    and the senior inside their scope."""
    return user.has_perm("eligibility.change_senior") and visible_to(user).filter(pk=senior.pk).exists()


def may_see_full_id_card_number(user) -> bool:
    return user.has_perm("eligibility.view_full_id_card_number")


# --- Registry imports (eligibility.importer; started by services.start_import) -----------------

_import_log = logging.getLogger("eligibility.import")
FINISHED_IMPORT_STATES = (ImportJob.State.DONE, ImportJob.State.CHECKED, ImportJob.State.FAILED)


def cached_progress(key: str, *, log, what: str):
    """What a running job last put in the cache under `key`, or None: the cache is a helper
    (Redis may be down), so its failure is logged and the page's bar simply waits."""
    return cache_call(f"progress of {what.split()[0]}", lambda: cache.get(key), default=None)


def import_progress_key(job_id: int) -> str:
    """The cache key under which a running import keeps (rows done, rows in all)."""
    return f"eligibility:import-progress:{job_id}"


def import_progress(*, job: ImportJob) -> tuple[int, int]:
    """(rows done, rows in all) of an import, for the page's progress bar.

    A finished job is complete. A queued or running one shows what its worker last put in the
    cache; with no figure there yet, or the cache failing (Redis down), it shows 0 of the rows
    counted at upload rather than an error.
    """
    if job.state in FINISHED_IMPORT_STATES:
        return job.total_rows, job.total_rows
    value = cached_progress(import_progress_key(job.pk), log=_import_log, what=f"import {job.pk}")
    if not value:
        return 0, job.total_rows
    done, total = value
    return min(done, total), total


def waits_for_task_service(job) -> bool:
    """True for a queued import or evaluation whose task could not be sent yet (the broker, Redis,
    is down): it is kept and starts when the broker is back, and the page says so."""
    from outbox.selectors import waiting_for_broker

    if job.state != job.State.QUEUED:
        return False
    task = (
        "eligibility.tasks.run_import_job"
        if isinstance(job, ImportJob)
        else "eligibility.tasks.run_evaluation"
    )
    return waiting_for_broker(task=task, args=[job.pk])


def import_jobs_visible_to(user) -> QuerySet[ImportJob]:
    """The imports a user may see, newest first, without their workbooks (deferred: they are
    large): the whole city's for those who see the whole city, else their own uploads."""
    if not user.is_authenticated or not user.has_perm("eligibility.view_importjob"):
        return ImportJob.objects.none()
    jobs = ImportJob.objects.defer("workbook", "annotated_workbook").select_related("created_by")
    if sees_whole_city(user):
        return jobs.order_by("-created_at")
    return jobs.filter(created_by=user).order_by("-created_at")


# --- The registry's search ------------------------------------------------------------------------

ID_CARD_TAIL = re.compile(r"^[0-9]{3}[0-9X]$")
FULL_ID_CARD = re.compile(r"^([0-9]{17}[0-9X]|[0-9]{15})$")
MIN_PHONE_DIGITS = 4


def typed_query(raw: str) -> str:
    """What was typed, with full-width letters and digits (a Chinese keyboard's) as ASCII."""
    return normalise_text(unicodedata.normalize("NFKC", raw or ""))


def search(seniors: QuerySet[Senior], query: str) -> QuerySet[Senior]:
    """Seniors matching a typed query, by what it looks like:

    a whole ID-card number → that person; 3 digits and a digit or X → the ID-card number's last 4;
    4 or more digits → a phone number ending so (the whole number too, dashes ignored);
    Latin letters → pinyin initials (`zs` finds 张三, a prefix of any reading of the surname);
    anything else → part of the name.
    """
    text = typed_query(query)
    if not text:
        return seniors
    compact = text.replace(" ", "").replace("-", "").upper()
    matches = Q(pk__in=[])
    if FULL_ID_CARD.match(compact):
        # Not a valid number: it may still be the end of a phone number.
        with contextlib.suppress(EligibilityError):
            matches |= Q(id_card_number=normalise_id_card_number(compact))
    if ID_CARD_TAIL.match(compact):
        matches |= Q(id_card_number__endswith=compact)
    if compact.isdigit() and len(compact) >= MIN_PHONE_DIGITS:
        seniors = seniors.annotate(phone_digits=Replace(F("phone"), Value("-"), Value("")))
        matches |= Q(phone_digits__endswith=compact)
    if compact.isascii() and compact.isalpha():
        matches |= Q(name_initials__contains=" " + compact.lower())
    elif not compact.isdigit():
        matches |= Q(name__contains=text)
    return seniors.filter(matches)


def with_current_determination(seniors: QuerySet[Senior]) -> QuerySet[Senior]:
    """Each senior with their current tier (code, names) and care-visit class, by one LEFT JOIN
    on the current determination (the database keeps it to one row per senior)."""
    return seniors.annotate(
        current=FilteredRelation("determinations", condition=Q(determinations__is_current=True)),
        current_tier_code=F("current__tier__code"),
        current_tier_name=F("current__tier__name"),
        current_tier_name_en=F("current__tier__name_en"),
        current_care_class=F("current__care_visit_class"),
    )


# --- Policies -------------------------------------------------------------------------------------


def rule_labels(*, policy, codes) -> dict[str, str]:
    """{code: label in the active language} for the given rule codes of a policy; a code the
    policy does not hold (an old determination) stands for itself."""
    labels = {
        rule.code: rule.label_in_language
        for rule in PolicyRule.objects.filter(policy=policy, code__in=list(codes))
    }
    return {code: labels.get(code, code) for code in codes}


def evaluation_date(*, today: dt.date) -> dt.date:
    """The day to evaluate as of "now": today, or the later day a finished whole-city run has
    already decided (the month-end run decides next month as of the 1st). Evaluating as of today
    after it would put seniors back under this month's version just before issuance."""
    next_first = next_month(first_day(today))
    ahead = (
        # At most the 1st of next month: a run as of a far date (someone trying a date out) must
        # not carry every later edit with it.
        EvaluationRun.objects.filter(state=EvaluationRun.State.DONE, as_of__gt=today, as_of__lte=next_first)
        .order_by("-as_of")
        .values_list("as_of", flat=True)
        .first()
    )
    return ahead or today


EVALUATION_STEPS = 5  # the statements of services.evaluate_eligibility, for its progress bar
_evaluation_log = logging.getLogger("eligibility.evaluation")


def evaluation_progress_key(run_id: int) -> str:
    return f"eligibility:evaluation-progress:{run_id}"


def evaluation_progress(*, run) -> tuple[int, int]:
    """(steps done, steps in all) of an evaluation run, for the page's progress bar; a finished
    run is complete, a queued one (or a cache that fails) shows 0."""
    if run.state in (run.State.DONE, run.State.FAILED):
        return EVALUATION_STEPS, EVALUATION_STEPS
    value = cached_progress(evaluation_progress_key(run.pk), log=_evaluation_log, what=f"evaluation {run.pk}")
    return int((value or {}).get("done", 0)), EVALUATION_STEPS


def policies_for_bureau() -> dict:
    """The policy in force today, those scheduled after it, the drafts and the retired ones."""
    today = timezone.localdate()
    current = policy_in_force(as_of=today)
    policies = list(
        Policy.objects.select_related("activated_by", "created_by").order_by("-created_at", "-id")
    )
    return {
        "current": current,
        "scheduled": [
            p for p in policies if not p.is_draft and p.effective_from and p.effective_from > today
        ],
        "drafts": [p for p in policies if p.is_draft],
        "retired": [p for p in policies if p.status == Policy.Status.RETIRED and p != current],
    }


def draft_of(code: str) -> Policy | None:
    return Policy.objects.filter(code=code, status=Policy.Status.DRAFT).first()


# --- What a draft would change (simulation) ------------------------------------------------------


@dataclass
class Simulation:
    """A draft against the policy in force, on today's registry; nothing written."""

    current: Policy
    draft: Policy
    as_of: dt.date
    tier_moves: list[dict]  # {"from", "to", "seniors"} (tier names; None: no tier)
    care_moves: list[dict]  # {"from", "to", "seniors"} (class codes; "": none)
    districts: list[dict]  # {"region", "seniors", "moved", "current", "draft", "difference"} (Money)
    total: dict  # the same for the whole city
    seniors: int


def simulate_policy(*, draft: Policy, as_of: dt.date, current: Policy | None = None) -> Simulation:
    """What `draft` would change against the policy in force on `as_of` (or `current`): the tier
    moves and the care-visit class moves (from → to, counts), and the monthly voucher budget
    (the sum of face values) per district, before and after. One GROUP BY statement over the
    registry (eligibility.policy_sql.comparison_query); nothing is written.
    """
    from eligibility import policy_sql

    current = current or policy_in_force(as_of=as_of)
    if current is None:
        raise EligibilityError("no_policy", _("No policy is in force on %(date)s."), date=as_of.isoformat())
    sql, params = policy_sql.comparison_query(current, draft, as_of)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    tiers = {tier.pk: tier for tier in Tier.objects.filter(policy__in=[current, draft])}
    zero = Money(0, "CNY")

    def face(tier_id):
        return tiers[tier_id].monthly_face_value if tier_id else zero

    def tier_key(tier_id):
        return (tiers[tier_id].code, tiers[tier_id].rank) if tier_id else ("", 999)

    community_district = _district_of_communities({row[0] for row in rows})
    tier_moves, care_moves, districts = defaultdict(int), defaultdict(int), {}
    total = {"region": None, "seniors": 0, "moved": 0, "current": zero, "draft": zero}
    for community_id, a_tier, b_tier, a_care, b_care, seniors in rows:
        tier_moves[(tier_key(a_tier), tier_key(b_tier))] += seniors
        care_moves[(a_care or "", b_care or "")] += seniors
        district = community_district.get(community_id)
        entry = districts.setdefault(
            district.pk if district else None,
            {"region": district, "seniors": 0, "moved": 0, "current": zero, "draft": zero},
        )
        moved = seniors if (tier_key(a_tier)[0], a_care or "") != (tier_key(b_tier)[0], b_care or "") else 0
        for bucket in (entry, total):
            bucket["seniors"] += seniors
            bucket["moved"] += moved
            bucket["current"] += face(a_tier) * seniors
            bucket["draft"] += face(b_tier) * seniors
    names = {tier.code: tier for tier in tiers.values() if tier.policy_id == draft.pk}
    names.update({tier.code: tier for tier in tiers.values() if tier.policy_id == current.pk})
    for bucket in [*districts.values(), total]:
        bucket["difference"] = bucket["draft"] - bucket["current"]
    return Simulation(
        current=current,
        draft=draft,
        as_of=as_of,
        tier_moves=[
            {"from": names.get(a[0]), "to": names.get(b[0]), "seniors": n, "moved": a[0] != b[0]}
            for (a, b), n in sorted(tier_moves.items(), key=lambda item: (item[0][0][1], item[0][1][1]))
        ],
        care_moves=[
            {"from": a, "to": b, "seniors": n, "moved": a != b}
            for (a, b), n in sorted(
                care_moves.items(), key=lambda item: (item[0][0] or "Z", item[0][1] or "Z")
            )
        ],
        districts=sorted(districts.values(), key=lambda d: d["region"].code if d["region"] else ""),
        total=total,
        seniors=total["seniors"],
    )


def _district_of_communities(community_ids) -> dict:
    """{community id: its district Region} (the district is the ancestor at district level)."""
    communities = Region.objects.filter(pk__in=community_ids).select_related("parent", "parent__parent")
    result = {}
    for community in communities:
        region = community
        while region is not None and region.level != Region.Level.DISTRICT:
            region = region.parent
        result[community.pk] = region or community
    return result


# --- Why a senior has their tier -----------------------------------------------------------------


@dataclass
class RuleVerdict:
    rule: PolicyRule
    holds: bool
    words: str  # the condition in plain words
    checks: list[str]  # the comparisons that decided it, with the senior's own values
    shortfall: int  # how many comparisons are missing (0 when it holds)


@dataclass
class Explanation:
    policy: Policy
    as_of: dt.date
    in_population: bool
    population_words: str
    tier: Tier | None  # what the rules (or an override) give today
    care_class: str
    override: "TierOverride | None"
    tier_rules: list[RuleVerdict]
    care_rules: list[RuleVerdict]
    # For a worker: the unmet rules of the next more favourable tier needing fewest changes.
    nearest_rules: list[RuleVerdict]

    @property
    def nearest(self) -> RuleVerdict | None:
        return self.nearest_rules[0] if self.nearest_rules else None

    @property
    def matched(self) -> list[RuleVerdict]:
        return [verdict for verdict in [*self.tier_rules, *self.care_rules] if verdict.holds]


def explain_senior(*, senior: Senior, as_of: dt.date, policy: Policy | None = None) -> Explanation | None:
    """Run the policy in force (or `policy`) over one senior in Python (conditions.explain): the
    same answer as the set-based evaluation, with reasons: each rule's verdict in plain words and
    the comparisons that decided it ("年龄 78 < 80")."""
    policy = policy or policy_in_force(as_of=as_of)
    if policy is None:
        return None
    rules = list(policy.rules.select_related("tier"))
    tier_rules, care_rules = [], []
    for rule in sorted(rules, key=lambda r: (r.tier.rank if r.tier else 99, r.care_visit_class, r.code)):
        outcome = conditions.explain(rule.condition, senior, as_of)
        verdict = RuleVerdict(
            rule=rule,
            holds=outcome.holds,
            words=conditions.describe(rule.condition),
            checks=[conditions.describe_check(c) for c in (outcome.met if outcome.holds else outcome.failed)],
            shortfall=conditions.shortfall(rule.condition, senior, as_of),
        )
        (tier_rules if rule.tier_id else care_rules).append(verdict)
    in_population = not policy.population or conditions.holds(policy.population, senior, as_of)
    override = TierOverride.objects.filter(
        senior=senior, ended_at__isnull=True, starts_on__lte=as_of, expires_on__gte=as_of
    ).first()
    override_tier = policy.tiers.filter(code=override.tier_code).first() if override else None
    if override_tier is None:
        override = None
    ruled = [v.rule.tier for v in tier_rules if v.holds] if in_population else []
    tier = override_tier or (min(ruled, key=lambda t: t.rank) if ruled else None)
    care = ""
    if in_population:
        for care_class in ("A", "B", "C"):
            if any(v.holds and v.rule.care_visit_class == care_class for v in care_rules):
                care = care_class
                break
    nearest = _nearest_rules(tier_rules, senior, as_of, ruled)
    return Explanation(
        policy=policy,
        as_of=as_of,
        in_population=in_population,
        population_words=conditions.describe(policy.population) if policy.population else "",
        tier=tier,
        care_class=care,
        override=override,
        tier_rules=tier_rules,
        care_rules=care_rules,
        nearest_rules=nearest,
    )


def _nearest_rules(tier_rules, senior, as_of, ruled) -> list:
    """The unmet rules of a more favourable tier that need the fewest changes, all of them, of
    the next such tier up; those missing the fewest years of age first.

    Measured from the tier the rules give, not a manual one (it tells the worker whether the
    facts would carry the senior there). All of the tied ones, because under the default policy
    ties are the rule: every senior who is not subsidized misses several one-fact rules.
    """
    rank = min((tier.rank for tier in ruled), default=None)
    better = [v for v in tier_rules if not v.holds and (rank is None or v.rule.tier.rank < rank)]
    if not better:
        return []
    fewest = min(v.shortfall for v in better)
    next_up = max(v.rule.tier.rank for v in better if v.shortfall == fewest)
    nearest = [v for v in better if v.shortfall == fewest and v.rule.tier.rank == next_up]

    def years_missing(verdict) -> int:
        failed = conditions.explain(verdict.rule.condition, senior, as_of).failed
        return sum(abs(c["leaf"]["value"] - c["actual"]) for c in failed if c["leaf"]["fact"] == "age")

    return sorted(nearest, key=lambda v: (years_missing(v), v.rule.code))


def open_override(*, senior: Senior) -> "TierOverride | None":
    return (
        TierOverride.objects.filter(senior=senior, ended_at__isnull=True).select_related("created_by").first()
    )


def may_set_community_contact(user, community: Region) -> bool:
    """The registry's writers (a community worker, the bureau) keep the contact of the
    communities they work in; an officer reads it."""
    return (
        user.has_perm("eligibility.change_senior")
        and communities_visible_to(user).filter(pk=community.pk).exists()
    )
