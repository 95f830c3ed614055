"""Forms of the registry pages, and the search that turns the list's form into a query.

The forms only parse what was typed; every rule of the registry (a valid ID-card number, aged 60+,
one record per person, phone formats) is the service's, and its refusal lands on the field it
names (`EligibilityError.field`).
"""

import datetime as dt

from django import forms
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from config.i18n import name_in_language
from eligibility.errors import EligibilityError
from eligibility.models import CareVisitClass, Determination, Region, Senior, Tier
from eligibility.selectors import MIN_PHONE_DIGITS, policy_in_force, typed_query
from eligibility.services import (
    CHOICE_FACTS,
    CONTACT_FIELDS,
    FLAG_FACTS,
)

# Refusals about the person themselves belong to the ID-card number: it decides who they are.
ID_CARD_CODES = frozenset({"invalid_id_card_number", "under_60", "duplicate_senior"})

# The yes/no facts, grouped as a worker asks about them at the door.
FLAG_GROUPS = [
    (_("Family"), ["children_in_city", "cares_for_disabled_child", "couple_one_disabled"]),
    (_("Health"), ["dementia", "severely_disabled"]),
    (
        _("Allowances and special status"),
        [
            "receives_dibao",
            "three_no",
            "special_care_recipient",
            "five_old",
            "family_planning_special",
            "receives_civil_affairs_assistance",
            "hardship_assessed",
            "special_difficulty",
        ],
    ),
]


# A senior's name is a person's (姓名), not the "name" (名称) of a region or a policy.
LABELS = {"name": pgettext_lazy("a person's", "Name")}


def field_label(name: str):
    """A senior field's label, as the registry pages show it."""
    return LABELS.get(name) or capfirst(Senior._meta.get_field(name).verbose_name)


class CommunityChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        # Two communities of the city may share a name; the subdistrict tells them apart.
        return f"{obj.parent.name} · {obj.name}" if obj.parent_id else obj.name


class ServiceErrorsMixin:
    """Put a service's refusal on the field it is about, or above the form when none is named."""

    def add_service_error(self, error: EligibilityError) -> None:
        field = "id_card_number" if error.code in ID_CARD_CODES else error.field
        self.add_error(field if field in self.fields else None, error.detail)


class SeniorForm(ServiceErrorsMixin, forms.Form):
    """Registration (with the ID-card number) and editing (without: it never changes)."""

    id_card_number = forms.CharField(
        label=field_label("id_card_number"),
        max_length=30,
        help_text=_("18 characters; the birth date and sex are read from it."),
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters"}
        ),
    )
    name = forms.CharField(
        label=field_label("name"), max_length=50, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    community = CommunityChoiceField(label=field_label("community"), queryset=Region.objects.none())
    phone = forms.CharField(
        label=field_label("phone"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    address = forms.CharField(label=field_label("address"), required=False, max_length=200)
    emergency_contact_name = forms.CharField(
        label=field_label("emergency_contact_name"), required=False, max_length=50
    )
    emergency_contact_relation = forms.CharField(
        label=field_label("emergency_contact_relation"), required=False, max_length=20
    )
    emergency_contact_phone = forms.CharField(
        label=field_label("emergency_contact_phone"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    living_arrangement = forms.ChoiceField(
        label=field_label("living_arrangement"),
        choices=Senior.LivingArrangement.choices,
        initial=Senior.LivingArrangement.WITH_FAMILY,
        widget=forms.RadioSelect,
    )
    self_care = forms.ChoiceField(
        label=field_label("self_care"),
        choices=Senior.SelfCare.choices,
        initial=Senior.SelfCare.INDEPENDENT,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, communities: QuerySet[Region], senior: Senior | None = None, **kwargs):
        if senior is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": senior.name,
                    "community": senior.community_id,
                    **{name: getattr(senior, name) for name in (*CONTACT_FIELDS, *CHOICE_FACTS, *FLAG_FACTS)},
                },
            )
        super().__init__(*args, **kwargs)
        for name in FLAG_FACTS:
            default = Senior._meta.get_field(name).default
            self.fields[name] = forms.BooleanField(label=field_label(name), required=False, initial=default)
        self.senior = senior
        if senior is not None:
            del self.fields["id_card_number"]
        communities = communities.select_related("parent")
        self.fields["community"].queryset = communities
        if senior is None and len(communities) == 1:
            # A community worker registers in their own community: preselected, nothing to pick.
            self.fields["community"].initial = communities[0].pk
            self.fields["community"].empty_label = None

    @property
    def contact_fields(self):
        return [self[name] for name in CONTACT_FIELDS]

    @property
    def fact_groups(self):
        """[(heading, [bound checkbox fields])] for the template."""
        return [(heading, [self[name] for name in names]) for heading, names in FLAG_GROUPS]

    def values(self) -> dict:
        """The cleaned values as the services take them (EDITABLE_FIELDS, and the ID for a new one)."""
        return dict(self.cleaned_data)


class StatusForm(ServiceErrorsMixin, forms.Form):
    """Moved out or deceased (or back to active) from a date; confirmed in a second step."""

    status = forms.ChoiceField(label=_("New status"), widget=forms.RadioSelect)
    status_date = forms.DateField(
        label=_("From (date)"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        initial=timezone.localdate,
    )
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, senior: Senior, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [
            (value, label) for value, label in Senior.Status.choices if value != senior.status
        ]


# A manual tier lasts at most a year (services.set_tier_override refuses a later expiry).
OVERRIDE_DAYS = 365


class TierOverrideForm(ServiceErrorsMixin, forms.Form):
    """A worker's manual tier for one senior: a tier of the policy in force, why, and until when.

    The form parses; the service decides (a tier of the policy in force, a reason, an expiry from
    today to a year ahead) and its refusal lands on the field it names.
    """

    tier_code = forms.ChoiceField(label=_("Tier"), widget=forms.RadioSelect)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        help_text=_("Why the rules do not fit this senior, as you would explain it to them."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    expires_on = forms.DateField(
        label=_("Until (date)"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, tiers, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier_code"].choices = [(tier.code, name_in_language(tier)) for tier in tiers]
        latest = today + dt.timedelta(days=OVERRIDE_DAYS)
        self.fields["expires_on"].help_text = _("At most a year from today: %(date)s at the latest.") % {
            "date": latest.isoformat()
        }
        self.fields["expires_on"].widget.attrs.update(min=today.isoformat(), max=latest.isoformat())


class EndTierOverrideForm(ServiceErrorsMixin, forms.Form):
    """Ending a manual tier early: the rules decide again at once."""

    end_reason = forms.CharField(
        label=_("Why it ends"),
        max_length=300,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class ImportForm(forms.Form):
    workbook = forms.FileField(
        label=_("Workbook (.xlsx)"),
        widget=forms.ClearableFileInput(
            attrs={"accept": ".xlsx,application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
        ),
    )
    dry_run = forms.BooleanField(
        label=_("Only check the workbook; change nothing (dry run)"), required=False, initial=True
    )


# --- The list: search (POSTed, kept in the session) and filters (GET) -----------------------------

ANY = ""
FILTER_NAMES = ("community", "tier", "care_class", "status")


def _tier_choices():
    """The tiers of the policy in force, by code (the filter outlives a change of policy version)."""
    policy = policy_in_force(as_of=timezone.localdate())
    tiers = Tier.objects.filter(policy=policy) if policy else Tier.objects.all()
    choices = {}
    for code, name in tiers.order_by("rank").values_list("code", "name"):
        choices.setdefault(code, name)
    return [(ANY, _("All tiers")), *choices.items()]


class RegistryFilterForm(forms.Form):
    """What the list may be narrowed to by GET: nothing personal, so it may sit in a URL."""

    community = forms.ChoiceField(label=field_label("community"), required=False)
    tier = forms.ChoiceField(label=_("Tier"), required=False)
    care_class = forms.ChoiceField(label=_("Care-visit class"), required=False)
    status = forms.ChoiceField(label=field_label("status"), required=False)

    def __init__(self, *args, communities: QuerySet[Region], **kwargs):
        super().__init__(*args, **kwargs)
        communities = list(communities.select_related("parent"))
        self.communities = {community.code: community for community in communities}
        label = CommunityChoiceField(queryset=Region.objects.none()).label_from_instance
        self.fields["community"].choices = [
            (ANY, _("All communities")),
            *((community.code, label(community)) for community in communities),
        ]
        self.fields["tier"].choices = _tier_choices()
        self.fields["care_class"].choices = [
            (ANY, _("All classes")),
            *((value, _("Class %(class)s") % {"class": value}) for value in CareVisitClass.values),
        ]
        self.fields["status"].choices = [(ANY, _("All statuses")), *Senior.Status.choices]
        if len(communities) == 1:
            del self.fields["community"]  # a worker's own community: nothing to choose

    def filters(self) -> dict[str, str]:
        """The valid, non-empty filters (invalid ones are dropped, not an error page)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value and name in FILTER_NAMES}

    def apply(self, seniors: QuerySet[Senior]) -> QuerySet[Senior]:
        filters = self.filters()
        if "community" in filters:
            seniors = seniors.filter(community=self.communities[filters["community"]])
        if "status" in filters:
            seniors = seniors.filter(status=filters["status"])
        if "tier" in filters or "care_class" in filters:
            current = Determination.objects.filter(senior=OuterRef("pk"), is_current=True)
            if "tier" in filters:
                current = current.filter(tier__code=filters["tier"])
            if "care_class" in filters:
                current = current.filter(care_visit_class=filters["care_class"])
            seniors = seniors.filter(Exists(current))
        return seniors


class RegistrySearchForm(RegistryFilterForm):
    """The list's form: a query (POSTed, never in a URL) and the filters."""

    q = forms.CharField(
        label=_("Name, pinyin initials, last 4 of the ID-card number, or phone"),
        required=False,
        max_length=50,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
    )
    field_order = ["q"]

    def clean_q(self):
        query = typed_query(self.cleaned_data["q"])
        compact = query.replace(" ", "").replace("-", "")
        if compact.isdigit() and len(compact) < MIN_PHONE_DIGITS:
            raise forms.ValidationError(
                _("Type at least 4 digits: the last 4 of the ID-card number, or part of a phone number.")
            )
        return query
