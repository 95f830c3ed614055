"""Forms of the care-visit pages. They parse what was typed; the rules are the service's, and its
refusal lands on the field it names (`CareVisitError.field`)."""

import datetime as dt

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from carevisits.models import CHECKLIST, Referral, VisitMode, VisitRecord, VisitRequirement
from eligibility.models import CareVisitClass


class ServiceErrors:
    def add_service_error(self, error) -> None:
        self.add_error(error.field if error.field in self.fields else None, error.detail)


class VisitForm(ServiceErrors, forms.Form):
    """A visit as recorded at the door on a phone: everything has a default but the toggles, so
    a visit with nothing to report is two taps."""

    outcome = forms.ChoiceField(
        label=_("Did the visit take place?"),
        choices=VisitRecord.Outcome.choices,
        initial=VisitRecord.Outcome.VISITED,
        widget=forms.RadioSelect,
    )
    mode = forms.ChoiceField(
        label=_("How"), choices=VisitMode.choices, initial=VisitMode.HOME, widget=forms.RadioSelect
    )
    visited_at = forms.DateTimeField(
        label=_("Date and time"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    living_problem = forms.BooleanField(label=_("Problems with daily living"), required=False)
    health_problem = forms.BooleanField(label=_("Health has worsened"), required=False)
    safety_hazard = forms.BooleanField(label=_("Safety hazard at home"), required=False)
    needs_help = forms.BooleanField(label=_("Needs services or help"), required=False)
    notes = forms.CharField(
        label=_("What was found"),
        required=False,
        max_length=2000,
        help_text=_("For a refusal: who declined and why."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    urgent = forms.BooleanField(label=_("Urgent situation found"), required=False)
    referral = forms.ChoiceField(label=_("Referred to"), choices=Referral.choices, required=False)
    action_taken = forms.CharField(label=_("What was done"), max_length=500, required=False)
    follow_up_on = forms.DateField(
        label=_("Follow-up due"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    volunteer = forms.ModelChoiceField(
        label=_("Visited by a volunteer"),
        queryset=None,
        required=False,
        empty_label=_("No: I made the visit myself"),
    )

    CHECKLIST = CHECKLIST

    def __init__(self, *args, volunteers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["volunteer"].queryset = volunteers
        if not volunteers.exists():
            del self.fields["volunteer"]
        self.initial.setdefault("visited_at", timezone.localtime().replace(second=0, microsecond=0))

    def checklist_fields(self):
        return [self[name] for name in CHECKLIST]


class PairingForm(ServiceErrors, forms.Form):
    """The senior's contact person: a worker of the community, a volunteer of it, or a new one."""

    visitor = forms.ModelChoiceField(label=_("A community worker"), queryset=None, required=False)
    volunteer = forms.ModelChoiceField(label=_("A volunteer"), queryset=None, required=False)
    volunteer_name = forms.CharField(label=_("New volunteer: name"), max_length=50, required=False)
    volunteer_phone = forms.CharField(label=_("New volunteer: phone"), max_length=20, required=False)

    def __init__(self, *args, workers, volunteers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["visitor"].queryset = workers
        self.fields["visitor"].label_from_instance = lambda user: user.get_full_name() or user.get_username()
        self.fields["volunteer"].queryset = volunteers
        self.fields["volunteer"].label_from_instance = lambda volunteer: f"{volunteer.name} {volunteer.phone}"
        self.fields["volunteer_phone"].widget.input_type = "tel"


class TemporaryRequirementForm(ServiceErrors, forms.Form):
    care_visit_class = forms.ChoiceField(label=_("Care-visit class"), choices=CareVisitClass.choices)
    visits_per_month = forms.IntegerField(label=_("Visits a month"), min_value=1, max_value=31, initial=2)
    effective_from = forms.DateField(
        label=_("From"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    effective_until = forms.DateField(
        label=_("Until"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    region = forms.ModelChoiceField(
        label=_("Region"), queryset=None, required=False, empty_label=_("The whole city")
    )
    label = forms.CharField(label=_("Why (e.g. Spring Festival, heat wave)"), max_length=100)

    def __init__(self, *args, regions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].queryset = regions.exclude(level="community")


def month_choices(today: dt.date, count: int = 13) -> list[dt.date]:
    """This month and the twelve before it, newest first."""
    months, month = [], today.replace(day=1)
    for _i in range(count):
        months.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return months


__all__ = ["PairingForm", "TemporaryRequirementForm", "VisitForm", "VisitRequirement", "month_choices"]
