"""Care visits of special-difficulty seniors (探访关爱服务, DESIGN.md §4.4): what each care-visit
class requires, who visits whom (pairings) and what each visit found (visit records).

The class itself is the eligibility app's (the senior's current determination); this app only
reads it. Written only by `carevisits.services`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from eligibility.models import CareVisitClass, Region, Senior, validate_phone


class VisitMode(models.TextChoices):
    HOME = "home", _("Home visit")
    PHONE = "phone", _("Phone call")
    VIDEO = "video", _("Video call")
    REMOTE = "remote", _("Remote monitoring")


MODES = [mode.value for mode in VisitMode]


class VisitRequirement(models.Model):
    """What a care-visit class requires, effective-dated data the bureau can change (§4.4).

    A standing rule (`temporary` off) covers the whole city; at most one per class is in force on
    any date. A temporary rule (extreme weather, festivals) has a date range and, optionally, a
    region (covering its subtree): in every month its range touches, seniors of its class in its
    region need at least its number of visits. It never lowers a standing rule.
    """

    care_visit_class = models.CharField(_("care-visit class"), max_length=1, choices=CareVisitClass.choices)
    temporary = models.BooleanField(_("temporary rule"), default=False)
    label = models.CharField(_("label"), max_length=100, blank=True)
    visits_per_month = models.PositiveSmallIntegerField(_("visits a month"))
    counts_home = models.BooleanField(_("home visits count"), default=True)
    counts_phone = models.BooleanField(_("phone calls count"), default=False)
    counts_video = models.BooleanField(_("video calls count"), default=False)
    counts_remote = models.BooleanField(_("remote monitoring counts"), default=False)
    home_interval_months = models.PositiveSmallIntegerField(
        _("longest interval between home visits (months)"), default=1
    )
    region = models.ForeignKey(
        Region,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("region"),
        help_text=_("Empty: the whole city."),
    )
    effective_from = models.DateField(_("effective from"))
    effective_until = models.DateField(_("effective until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        ordering = ["care_visit_class", "temporary", "-effective_from"]
        verbose_name = _("visit requirement")
        verbose_name_plural = _("visit requirements")
        constraints = [
            models.CheckConstraint(
                condition=Q(care_visit_class__in=["A", "B", "C"]), name="visit_requirement_class_valid"
            ),
            models.CheckConstraint(
                condition=Q(visits_per_month__gte=1) & Q(visits_per_month__lte=31),
                name="visit_requirement_visits_1_31",
            ),
            models.CheckConstraint(
                condition=Q(home_interval_months__gte=1) & Q(home_interval_months__lte=12),
                name="visit_requirement_interval_1_12",
            ),
            models.CheckConstraint(
                condition=Q(counts_home=True)
                | Q(counts_phone=True)
                | Q(counts_video=True)
                | Q(counts_remote=True),
                name="visit_requirement_some_mode_counts",
            ),
            models.CheckConstraint(
                condition=Q(effective_until__isnull=True)
                | Q(effective_until__gte=models.F("effective_from")),
                name="visit_requirement_window_valid",
            ),
            # A temporary rule has an end; a standing rule covers the whole city.
            models.CheckConstraint(
                condition=Q(temporary=False) | Q(effective_until__isnull=False),
                name="visit_requirement_temporary_has_end",
            ),
            models.CheckConstraint(
                condition=Q(temporary=True) | Q(region__isnull=True),
                name="visit_requirement_standing_is_citywide",
            ),
            models.UniqueConstraint(
                fields=["care_visit_class", "effective_from"],
                condition=Q(temporary=False),
                name="visit_requirement_one_standing_start_per_class",
            ),
        ]

    def __str__(self):
        return self.label or f"{self.care_visit_class} ≥ {self.visits_per_month}"

    @property
    def counted_modes(self) -> list[str]:
        return [mode for mode in MODES if getattr(self, f"counts_{mode}")]


class Volunteer(models.Model):
    """A contact person who has no account (a volunteer, a neighbour): a name and a phone."""

    name = models.CharField(pgettext_lazy("a person's", "name"), max_length=50)
    phone = models.CharField(_("phone"), max_length=20, validators=[validate_phone])
    community = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="+", verbose_name=_("community")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("volunteer")
        verbose_name_plural = _("volunteers")
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="volunteer_name_required"),
            models.CheckConstraint(condition=~Q(phone=""), name="volunteer_phone_required"),
            models.UniqueConstraint(
                fields=["community", "name", "phone"], name="volunteer_unique_in_community"
            ),
        ]

    def __str__(self):
        return self.name


class Pairing(models.Model):
    """A senior's contact person (探访关爱服务联系人): a worker (a user) or a volunteer.

    One current pairing per senior (the database keeps it so); a new one ends the old one, so the
    history stays.
    """

    senior = models.ForeignKey(Senior, on_delete=models.PROTECT, related_name="pairings")
    visitor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="care_pairings",
        verbose_name=_("contact person (worker)"),
    )
    volunteer = models.ForeignKey(
        Volunteer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pairings",
        verbose_name=_("contact person (volunteer)"),
    )
    starts_on = models.DateField(_("starts on"))
    assigned_at = models.DateTimeField(_("assigned at"), auto_now_add=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("assigned by"),
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

    class Meta:
        ordering = ["-assigned_at", "-id"]
        verbose_name = _("pairing")
        verbose_name_plural = _("pairings")
        constraints = [
            models.UniqueConstraint(
                fields=["senior"], condition=Q(ended_at__isnull=True), name="pairing_one_current_per_senior"
            ),
            models.CheckConstraint(
                condition=(Q(visitor__isnull=False) & Q(volunteer__isnull=True))
                | (Q(visitor__isnull=True) & Q(volunteer__isnull=False)),
                name="pairing_one_contact_person",
            ),
        ]
        indexes = [models.Index(fields=["visitor", "ended_at"])]

    def __str__(self):
        return f"{self.senior_id} → {self.contact_name}"

    @property
    def contact_name(self) -> str:
        if self.volunteer_id:
            return self.volunteer.name
        return self.visitor.get_full_name() or self.visitor.get_username()


class Referral(models.TextChoices):
    NONE = "", _("Not referred")
    SOCIAL_WORKER = "social_worker", _("Social worker")
    MEDICAL = "medical", _("Medical services")
    POLICE = "police", _("Police")
    FAMILY = "family", _("Family")
    OTHER = "other", _("Other")


# The fixed checklist of a visit (what was found), each a toggle on the phone form.
CHECKLIST = ("living_problem", "health_problem", "safety_hazard", "needs_help")


class VisitRecord(models.Model):
    """One care visit (探访关爱服务记录), or a senior's refusal of visits (拒绝探访, a written record
    the plan requires). Never deleted; an urgent finding is closed, not erased."""

    class Outcome(models.TextChoices):
        VISITED = "visited", _("Visited")
        DECLINED = "declined", _("Declined visits")

    senior = models.ForeignKey(Senior, on_delete=models.PROTECT, related_name="care_visits")
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.VISITED)
    mode = models.CharField(_("mode"), max_length=10, choices=VisitMode.choices)
    visited_at = models.DateTimeField(_("date and time"))
    # The calendar day in Asia/Shanghai (the month's figures group on it).
    visited_on = models.DateField(_("date"), editable=False)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    # A visit a volunteer made, recorded by a worker on their behalf.
    volunteer = models.ForeignKey(
        Volunteer,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="visits",
        verbose_name=_("visited by (volunteer)"),
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    living_problem = models.BooleanField(_("problems with daily living"), default=False)
    health_problem = models.BooleanField(_("health has worsened"), default=False)
    safety_hazard = models.BooleanField(_("safety hazard at home"), default=False)
    needs_help = models.BooleanField(_("needs services or help"), default=False)
    notes = models.TextField(_("what was found"), max_length=2000, blank=True)
    urgent = models.BooleanField(_("urgent situation found"), default=False)
    referral = models.CharField(_("referred to"), max_length=20, choices=Referral.choices, blank=True)
    action_taken = models.CharField(_("what was done"), max_length=500, blank=True)
    follow_up_on = models.DateField(_("follow-up due"), null=True, blank=True)
    urgent_closed_at = models.DateTimeField(_("urgent finding closed at"), null=True, blank=True)
    urgent_closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("urgent finding closed by"),
    )
    source = models.CharField(_("recorded from"), max_length=10, default="page", editable=False)

    class Meta:
        ordering = ["-visited_at", "-id"]
        verbose_name = _("visit record")
        verbose_name_plural = _("visit records")
        constraints = [
            models.CheckConstraint(condition=Q(mode__in=MODES), name="visit_record_mode_valid"),
            models.CheckConstraint(
                condition=Q(outcome__in=["visited", "declined"]), name="visit_record_outcome_valid"
            ),
            models.CheckConstraint(
                condition=Q(referral__in=["", "social_worker", "medical", "police", "family", "other"]),
                name="visit_record_referral_valid",
            ),
            # A refusal is a written record: it says who refused and why.
            models.CheckConstraint(
                condition=~Q(outcome="declined") | ~Q(notes=""), name="visit_record_declined_has_note"
            ),
            # An urgent situation says what was done: referred to someone, or an action in words.
            models.CheckConstraint(
                condition=Q(urgent=False) | ~Q(referral="") | ~Q(action_taken=""),
                name="visit_record_urgent_has_action",
            ),
            models.CheckConstraint(
                condition=Q(urgent_closed_at__isnull=True) | Q(urgent=True),
                name="visit_record_only_urgent_closes",
            ),
            models.CheckConstraint(
                condition=Q(follow_up_on__isnull=True) | Q(follow_up_on__gte=models.F("visited_on")),
                name="visit_record_follow_up_after_visit",
            ),
        ]
        indexes = [
            models.Index(fields=["senior", "visited_on"], name="visit_record_senior_day"),
            # The month's figures read the month's rows from the index alone (PostgreSQL).
            models.Index(fields=["visited_on", "senior_id", "mode", "outcome"], name="visit_record_day"),
            # The last home visit of a B or C senior within their interval.
            models.Index(
                fields=["senior", "visited_on"],
                condition=Q(mode="home", outcome="visited"),
                name="visit_record_home",
            ),
            models.Index(
                fields=["senior"],
                condition=Q(urgent=True, urgent_closed_at__isnull=True),
                name="visit_record_open_urgent",
            ),
        ]

    def __str__(self):
        return f"{self.senior_id} {self.visited_on} {self.mode}"

    @property
    def visitor_name(self) -> str:
        if self.volunteer_id:
            return self.volunteer.name
        return self.recorded_by.get_full_name() or self.recorded_by.get_username()

    @property
    def findings(self) -> list[str]:
        return [str(self._meta.get_field(name).verbose_name) for name in CHECKLIST if getattr(self, name)]
