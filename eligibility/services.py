"""Writes of the eligibility app: the registry, the default policy, and evaluation."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumValidationError

from config.months import local_date
from eligibility import rules
from eligibility.errors import EligibilityError
from eligibility.models import Determination, Policy, PolicyRule, Region, Senior, Tier
from eligibility.rules import aged_at_least
from eligibility.selectors import policy_in_force

FACT_FIELDS = frozenset(
    {
        "self_care",
        "lives_alone",
        "empty_nest",
        "left_behind",
        "receives_dibao",
        "receives_civil_affairs_assistance",
        "special_care_recipient",
        "three_no",
        "five_old",
        "hardship_assessed",
        "family_planning_special",
        "dementia",
        "couple_one_disabled",
        "cares_for_disabled_child",
        "special_difficulty",
    }
)


ID_CARD_REASONS = {
    InvalidLength: _("The ID-card number must have 18 characters."),
    InvalidFormat: _("The ID-card number must be 17 digits followed by a digit or X."),
    InvalidChecksum: _("The ID-card number's check digit is wrong; please check it for a typing error."),
    InvalidComponent: _("The ID-card number holds an impossible birth date or region code."),
    StdnumValidationError: _("The ID-card number is not valid."),
}


def normalise_id_card_number(raw: str) -> str:
    """Validate a resident ID (GB 11643 check digit, birth date, region) and normalise it.

    Refuses with `invalid_id_card_number`; the message never repeats the number.
    """
    try:
        return ric.validate(raw or "").upper()
    except StdnumValidationError as error:
        reason = ID_CARD_REASONS.get(type(error), ID_CARD_REASONS[StdnumValidationError])
        raise EligibilityError("invalid_id_card_number", reason) from None


@transaction.atomic
def register_senior(
    *,
    id_card_number: str,
    name: str,
    community: Region,
    status_date: dt.date | None = None,
    created_by=None,
    phone: str = "",
    address: str = "",
    **facts,
) -> Senior:
    """Register one senior (一人一档). Birth date and sex come from the ID-card number.

    Refuses: `invalid_id_card_number`, `duplicate_senior` (already registered),
    `invalid_input` (not a community, unknown fact, blank name).
    """
    number = normalise_id_card_number(id_card_number)
    unknown = set(facts) - FACT_FIELDS
    if unknown:
        raise EligibilityError(
            "invalid_input", _("Unknown facts: %(names)s."), names=", ".join(sorted(unknown))
        )
    if not (name or "").strip():
        raise EligibilityError("invalid_input", _("The name is required."))
    if community.level != Region.Level.COMMUNITY:
        raise EligibilityError("invalid_input", _("A senior must be registered in a community."))
    if Senior.objects.filter(id_card_number=number).exists():
        raise EligibilityError("duplicate_senior", _("This person is already registered."))
    senior = Senior(
        id_card_number=number,
        name=name.strip(),
        birth_date=ric.get_birth_date(number),
        # The 17th character is odd for men and even for women.
        sex=Senior.Sex.MALE if int(number[16]) % 2 else Senior.Sex.FEMALE,
        community=community,
        status_date=status_date or local_date(timezone.now()),
        created_by=created_by,
        phone=phone,
        address=address,
        **facts,
    )
    senior.full_clean(exclude=["id_card_number"], validate_unique=False)
    try:
        with transaction.atomic():
            senior.save()
    except IntegrityError:
        # Registered by someone else between our check and our insert (a double submit).
        raise EligibilityError("duplicate_senior", _("This person is already registered.")) from None
    return senior


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
    bounds = qualifying.order_by("id").values_list("id", flat=True)
    first, last = bounds.first(), bounds.last()
    start = first or 0
    while first is not None and start <= last:
        chunk = qualifying.filter(id__gte=start, id__lt=start + CHUNK)
        outcomes = _outcomes_for_chunk(chunk, policy_rules, as_of)
        qualifying_ids.update(outcomes)
        current = {
            row["senior_id"]: (
                row["policy_id"],
                row["tier_id"],
                row["care_visit_class"],
                row["matched_rules"],
            )
            for row in Determination.objects.filter(
                is_current=True, senior_id__gte=start, senior_id__lt=start + CHUNK
            ).values("senior_id", "policy_id", "tier_id", "care_visit_class", "matched_rules")
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
        start += CHUNK

    stale = Determination.objects.filter(is_current=True, senior__in=scope)
    retired = 0
    # Anyone in scope with a current determination who no longer qualifies loses it.
    stale_ids = [sid for sid in stale.values_list("senior_id", flat=True) if sid not in qualifying_ids]
    for i in range(0, len(stale_ids), BATCH):
        retired += stale.filter(senior_id__in=stale_ids[i : i + BATCH]).update(is_current=False)
    return EvaluationResult(as_of=as_of, policy=policy, evaluated=evaluated, changed=changed, retired=retired)
