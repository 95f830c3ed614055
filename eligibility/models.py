"""Regions, the senior registry, policies with their tiers and rules, and determinations."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import Exact
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from djmoney.models.fields import MoneyField
from simple_history.models import HistoricalRecords

from config.i18n import in_language

PHONE_PATTERN = r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-[0-9]{7,8})$"


def validate_phone(value: str) -> None:
    """A mobile number or a landline with its area code, as the registry stores them."""
    if value and not re.match(PHONE_PATTERN, value):
        raise ValidationError(
            _("Enter a mobile number (11 digits) or an area code and number, e.g. 0571-87001234."),
            code="invalid_phone",
        )


class Region(models.Model):
    class Level(models.TextChoices):
        DISTRICT = "district", _("District")
        SUBDISTRICT = "subdistrict", _("Subdistrict")
        COMMUNITY = "community", _("Community")

    code = models.CharField(_("code"), max_length=12, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    level = models.CharField(_("level"), max_length=12, choices=Level.choices)
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    # Materialised path of codes ("3301/330102/33010201/"): "covers the subtree" is a prefix test.
    path = models.CharField(max_length=255, unique=True, editable=False)
    # Whom a senior of this community calls (社区居家养老联系人): printed on their card and shown
    # on their voucher page. A public duty phone, never a private one.
    contact_name = models.CharField(_("contact person"), max_length=50, blank=True)
    contact_phone = models.CharField(
        _("contact phone"),
        max_length=20,
        blank=True,
        help_text=_("A mobile number or an area code and number, e.g. 0571-87001234."),
        validators=[validate_phone],
    )

    class Meta:
        ordering = ["path"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")
        constraints = [
            models.CheckConstraint(
                condition=(Q(level="district") & Q(parent__isnull=True))
                | (~Q(level="district") & Q(parent__isnull=False)),
                name="region_district_is_root",
            ),
            models.CheckConstraint(
                condition=Q(level__in=["district", "subdistrict", "community"]),
                name="region_level_valid",
            ),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        self.path = f"{self.parent.path if self.parent_id else ''}{self.code}/"
        super().save(*args, **kwargs)


class Senior(models.Model):
    """One record per person (一人一档), keyed by the normalised ID-card number.

    Written only by `eligibility.services` (`register_senior`, `update_senior`,
    `change_senior_status`, `import_seniors`), so every change lands in the history.
    """

    class Sex(models.TextChoices):
        MALE = "M", _("Male")
        FEMALE = "F", _("Female")

    class SelfCare(models.TextChoices):
        INDEPENDENT = "independent", _("Able to care for self")
        PARTIAL = "partial", _("Partly able to care for self")
        DISABLED = "disabled", _("Unable to care for self (disabled)")

    class LivingArrangement(models.TextChoices):
        ALONE = "alone", _("Lives alone")
        EMPTY_NEST = "empty_nest", _("Empty-nest (lives without children)")
        LEFT_BEHIND = "left_behind", _("Left-behind")
        WITH_FAMILY = "with_family", _("Lives with family")

    class Status(models.TextChoices):
        ACTIVE = "active", pgettext_lazy("senior status", "Active")
        MOVED_AWAY = "moved_away", pgettext_lazy("senior status", "Moved out")
        DECEASED = "deceased", pgettext_lazy("senior status", "Deceased")

    id_card_number = models.CharField(_("ID-card number"), max_length=18, unique=True)
    name = models.CharField(pgettext_lazy("a person's", "name"), max_length=50)
    # Pinyin initials of the name, each reading of a many-reading surname: " zs" for 张三,
    # " dxx sxx cxx" for 单雄信. A search for "zs" looks for " zs" in it (a prefix of a variant).
    name_initials = models.CharField(_("pinyin initials"), max_length=120, blank=True, editable=False)
    birth_date = models.DateField(_("birth date"))
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices)
    community = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="seniors", verbose_name=_("community")
    )
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    emergency_contact_name = models.CharField(_("emergency contact"), max_length=50, blank=True)
    emergency_contact_relation = models.CharField(_("relation to the senior"), max_length=20, blank=True)
    emergency_contact_phone = models.CharField(_("emergency contact phone"), max_length=20, blank=True)

    # The facts the rules read (DESIGN.md §4.1 and §4.4).
    living_arrangement = models.CharField(
        _("living arrangement"),
        max_length=12,
        choices=LivingArrangement.choices,
        default=LivingArrangement.WITH_FAMILY,
    )
    children_in_city = models.BooleanField(_("has children living in the city"), default=True)
    self_care = models.CharField(
        _("self-care ability"), max_length=12, choices=SelfCare.choices, default=SelfCare.INDEPENDENT
    )
    dementia = models.BooleanField(_("dementia"), default=False)
    severely_disabled = models.BooleanField(_("severely disabled"), default=False)
    receives_dibao = models.BooleanField(_("receives minimum-living allowance (低保)"), default=False)
    three_no = models.BooleanField(_("three-no / extreme hardship (三无/特困)"), default=False)
    special_care_recipient = models.BooleanField(_("key special-care recipient (重点优抚)"), default=False)
    five_old = models.BooleanField(_("revolutionary five-old (五老)"), default=False)
    family_planning_special = models.BooleanField(_("family-planning special family"), default=False)
    receives_civil_affairs_assistance = models.BooleanField(
        _("receives civil-affairs assistance"), default=False
    )
    hardship_assessed = models.BooleanField(_("community-assessed hardship"), default=False)
    cares_for_disabled_child = models.BooleanField(_("cares for a disabled or demented child"), default=False)
    couple_one_disabled = models.BooleanField(_("couple, one disabled or demented"), default=False)
    special_difficulty = models.BooleanField(_("special-difficulty senior"), default=False)

    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_date = models.DateField(_("status date"))
    created_at = models.DateTimeField(_("registered at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("registered by"),
    )

    history = HistoricalRecords(
        verbose_name=_("historical senior"),
        verbose_name_plural=_("senior history"),
        excluded_fields=["updated_at", "name_initials"],
    )

    class Meta:
        ordering = ["id"]
        verbose_name = _("senior")
        verbose_name_plural = _("seniors")
        permissions = [
            ("view_full_id_card_number", _("Can see ID-card numbers unmasked")),
            ("import_seniors", _("Can import seniors from a workbook")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Exact(Length("id_card_number"), 18), name="senior_id_card_18_chars"
            ),
            models.CheckConstraint(condition=Q(sex__in=["M", "F"]), name="senior_sex_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "moved_away", "deceased"]), name="senior_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(self_care__in=["independent", "partial", "disabled"]),
                name="senior_self_care_valid",
            ),
            models.CheckConstraint(
                condition=Q(living_arrangement__in=["alone", "empty_nest", "left_behind", "with_family"]),
                name="senior_living_arrangement_valid",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="senior_name_required"),
        ]
        indexes = [
            models.Index(fields=["community", "status"]),
            models.Index(fields=["phone"]),
        ]

    def __str__(self):
        return self.masked_name

    @property
    def masked_name(self) -> str:
        """张*明: enough for the senior to recognise, not enough to identify."""
        return mask_name(self.name)

    @property
    def masked_id_card_number(self) -> str:
        return mask_id_card_number(self.id_card_number)


def mask_name(name: str) -> str:
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_id_card_number(number: str) -> str:
    """330106********1234: the region of birth and the last four, never the birth date."""
    if len(number) != 18:
        return "*" * len(number)
    return number[:6] + "*" * 8 + number[-4:]


class RegionScope(models.Model):
    """The region a bureau administrator, officer or community worker works in (DESIGN.md §8).

    A worker's is one community; an officer's a subdistrict or district (read-only); a bureau
    administrator's, when set, the part of the city they look after (none: the whole city).
    Provider staff hang on their provider instead (`providers.StaffMember`).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="region_scope",
        verbose_name=_("user"),
    )
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="scoped_users", verbose_name=_("region")
    )
    assigned_at = models.DateTimeField(_("assigned at"), auto_now=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned by"),
    )

    class Meta:
        verbose_name = _("region scope")
        verbose_name_plural = _("region scopes")

    def __str__(self):
        return f"{self.user} → {self.region}"


class ImportJob(models.Model):
    """One upload of a registry workbook, run inline or by a Celery worker (large files).

    The workbook travels in the row itself, so a worker on another machine can read it; the
    report (counts, or every error with its row and column) and the annotated copy come back here.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Imported")
        CHECKED = "checked", _("Checked (dry run)")
        FAILED = "failed", _("Refused")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    filename = models.CharField(_("file name"), max_length=200)
    dry_run = models.BooleanField(_("dry run"), default=False)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    workbook = models.BinaryField(_("workbook"), editable=False)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    # {"created": n, "updated": n, "unchanged": n} or {"errors": [{row, column, code, message}], ...}
    report = models.JSONField(_("report"), default=dict, blank=True)
    annotated_workbook = models.BinaryField(_("annotated workbook"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "done", "checked", "failed"]),
                name="import_job_state_valid",
            ),
        ]

    def __str__(self):
        return self.filename


class Policy(models.Model):
    """A versioned, effective-dated set of eligibility rules and the terms of each tier (政策).

    A version is a draft until it is activated from a date; from then on the database refuses
    any edit of its tiers and rules (a change is a new draft, `services.copy_policy`). At most one
    published version is in force on any date (an exclusion constraint on PostgreSQL). When a
    newer version is activated, the one it replaces is retired: it keeps its window, now closed
    the day before the new one starts, so past dates still find the policy that was in force.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", pgettext_lazy("policy status", "Draft")
        ACTIVE = "active", pgettext_lazy("policy status", "Active")
        RETIRED = "retired", pgettext_lazy("policy status", "Retired")

    code = models.SlugField(_("code"), max_length=40)
    version = models.PositiveIntegerField(_("version"), default=1)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    effective_from = models.DateField(_("effective from"), null=True, blank=True)
    effective_until = models.DateField(_("effective until"), null=True, blank=True)
    # Who the policy covers at all (a condition, conditions.py): outside it, no determination
    # (unless a worker set a manual tier: a decision about one person, which evaluation keeps).
    population = models.JSONField(_("who the policy covers"), default=dict)
    # Whether the unused part of last month's voucher is added to this month's (结转), once: see
    # vouchers.services.carry_over. Fixed once published, like the rules.
    carry_over_unused = models.BooleanField(_("carry unused balance over to the next month"), default=False)
    based_on = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("copied from"),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    activated_at = models.DateTimeField(_("activated at"), null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("activated by"),
    )

    class Meta:
        ordering = ["-effective_from", "-version"]
        verbose_name = _("policy")
        verbose_name_plural = _("policies")
        permissions = [("activate_policy", "Can activate a policy version")]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="policy_code_version_unique"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(status="draft"), name="policy_one_draft_per_code"
            ),
            models.CheckConstraint(
                condition=Q(effective_until__isnull=True)
                | Q(effective_until__gte=models.F("effective_from")),
                name="policy_effective_window_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "active", "retired"]), name="policy_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(effective_from__isnull=False),
                name="policy_published_has_start",
            ),
            models.CheckConstraint(
                condition=~Q(status="retired") | Q(effective_until__isnull=False),
                name="policy_retired_has_end",
            ),
        ]

    def __str__(self):
        return f"{self.name} v{self.version}"

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT


class Tier(models.Model):
    """The terms of one pricing tier under one policy (服务类别). Tiers are data, not code."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="tiers")
    code = models.SlugField(_("code"), max_length=30)
    name = models.CharField(_("name"), max_length=50)
    name_en = models.CharField(_("English name"), max_length=50, blank=True)
    # 1 is the most favourable; a senior matching several tiers gets the lowest rank.
    rank = models.PositiveSmallIntegerField(_("favourability rank"))
    government_share_rate = models.DecimalField(_("government share rate"), max_digits=5, decimal_places=4)
    monthly_face_value = MoneyField(
        _("monthly face value"), max_digits=12, decimal_places=2, default_currency="CNY"
    )

    class Meta:
        ordering = ["policy", "rank"]
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        constraints = [
            models.UniqueConstraint(fields=["policy", "code"], name="tier_code_unique_in_policy"),
            models.UniqueConstraint(fields=["policy", "rank"], name="tier_rank_unique_in_policy"),
            # The target of the composite foreign keys "a rule grants a tier of its own policy".
            models.UniqueConstraint(fields=["policy", "id"], name="tier_policy_id_unique"),
            models.CheckConstraint(
                condition=Q(government_share_rate__gte=0) & Q(government_share_rate__lte=1),
                name="tier_government_share_rate_0_1",
            ),
            models.CheckConstraint(
                condition=Q(monthly_face_value__gte=0), name="tier_face_value_non_negative"
            ),
        ]

    def __str__(self):
        return self.name


class CareVisitClass(models.TextChoices):
    A = "A", _("Class A: a home visit every month")
    B = "B", _("Class B: a visit every month, a home visit every six months")
    C = "C", _("Class C: a visit every month, a home visit every year")


class PolicyRule(models.Model):
    """A rule of a policy: a condition over the senior's facts (eligibility.conditions) and what
    it grants, either a tier of the same policy or a care-visit class.

    A senior gets the most favourable tier among the tier rules that match, and the most
    intensive care-visit class (A before B before C) among the care rules that match.
    """

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="rules")
    code = models.SlugField(_("rule code"), max_length=50)
    label = models.CharField(_("label"), max_length=200)
    label_en = models.CharField(_("English label"), max_length=200, blank=True)
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        related_name="rules",
        null=True,
        blank=True,
        verbose_name=_("grants tier"),
    )
    care_visit_class = models.CharField(
        _("grants care-visit class"), max_length=1, choices=CareVisitClass.choices, blank=True
    )
    condition = models.JSONField(_("condition"), default=dict)

    class Meta:
        ordering = ["policy", "care_visit_class", "tier__rank", "code"]
        verbose_name = _("policy rule")
        verbose_name_plural = _("policy rules")
        constraints = [
            models.UniqueConstraint(fields=["policy", "code"], name="policy_rule_code_unique"),
            models.CheckConstraint(
                condition=(Q(tier__isnull=False) & Q(care_visit_class=""))
                | (Q(tier__isnull=True) & Q(care_visit_class__in=["A", "B", "C"])),
                name="policy_rule_grants_one_thing",
            ),
        ]

    def __str__(self):
        return self.code

    @property
    def label_in_language(self) -> str:
        return in_language(self.label, self.label_en)


class TierOverride(models.Model):
    """A worker's manual tier for one senior (人工认定), with a reason and an expiry date.

    Evaluation respects it from `starts_on` to `expires_on` (inclusive) under whichever policy is
    in force, by tier code; it is shown as an override wherever the tier is. Ending it early is
    recorded (who, when, why); at most one is open per senior.
    """

    senior = models.ForeignKey(Senior, on_delete=models.PROTECT, related_name="tier_overrides")
    tier_code = models.SlugField(_("tier"), max_length=30)
    reason = models.CharField(_("reason"), max_length=300)
    starts_on = models.DateField(_("starts on"))
    expires_on = models.DateField(_("expires on"))
    created_at = models.DateTimeField(_("set at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("set by")
    )
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("ended by"),
    )
    end_reason = models.CharField(_("reason for ending"), max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("tier override")
        verbose_name_plural = _("tier overrides")
        constraints = [
            models.UniqueConstraint(
                fields=["senior"],
                condition=Q(ended_at__isnull=True),
                name="tier_override_one_open_per_senior",
            ),
            models.CheckConstraint(
                condition=Q(expires_on__gte=models.F("starts_on")), name="tier_override_window_valid"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="tier_override_has_reason"),
        ]

    def __str__(self):
        return f"{self.senior_id}: {self.tier_code} → {self.expires_on}"


class Determination(models.Model):
    """The outcome of evaluating one senior against a policy (认定).

    A new row is written only when the outcome changes; exactly one row per senior is current,
    which the database enforces with a partial unique index. A senior within the policy's
    population who matches no tier rule but a care-visit rule keeps their class (no tier).
    Attributable: the user who caused it, or the scheduled job by name.
    """

    senior = models.ForeignKey(Senior, on_delete=models.PROTECT, related_name="determinations")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="determinations")
    tier = models.ForeignKey(
        Tier, on_delete=models.PROTECT, related_name="determinations", null=True, blank=True
    )
    care_visit_class = models.CharField(
        _("care-visit class"), max_length=1, choices=CareVisitClass.choices, blank=True
    )
    matched_rules = models.JSONField(_("matched rules"), default=list)
    override = models.ForeignKey(
        TierOverride,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="determinations",
        verbose_name=_("tier override"),
    )
    as_of = models.DateField(_("as of"))
    is_current = models.BooleanField(default=True)
    determined_at = models.DateTimeField(auto_now_add=True)
    determined_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    determined_by_job = models.CharField(_("scheduled job"), max_length=80, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("determination")
        verbose_name_plural = _("determinations")
        constraints = [
            models.UniqueConstraint(
                fields=["senior"], condition=Q(is_current=True), name="determination_one_current_per_senior"
            ),
            models.CheckConstraint(
                condition=Q(care_visit_class__in=["", "A", "B", "C"]), name="determination_care_class_valid"
            ),
            models.CheckConstraint(
                condition=Q(tier__isnull=False) | ~Q(care_visit_class=""),
                name="determination_has_tier_or_class",
            ),
        ]
        indexes = [models.Index(fields=["tier", "is_current"])]

    def __str__(self):
        return f"{self.senior_id}: {self.tier.code if self.tier else '-'} ({self.as_of})"


class EvaluationRun(models.Model):
    """One evaluation of the registry (`services.evaluate_eligibility`): who or which job ran it,
    as of when, under which policy, and what it changed. The bureau's page follows a queued one."""

    class State(models.TextChoices):
        QUEUED = "queued", pgettext_lazy("evaluation", "Queued")
        RUNNING = "running", pgettext_lazy("evaluation", "Running")
        DONE = "done", pgettext_lazy("evaluation", "Done")
        FAILED = "failed", pgettext_lazy("evaluation", "Failed")

    as_of = models.DateField(_("as of"))
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.CharField(_("scheduled job"), max_length=80, blank=True)
    evaluated = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0)
    retired = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("evaluation")
        verbose_name_plural = _("evaluations")

    def __str__(self):
        return f"{self.as_of} {self.state}"
