"""The accounts form: a person, their role, and where they work."""

from django import forms
from django.utils.translation import gettext_lazy as _

from config.roles import PROVIDER_ROLES, REGION_ROLES, ROLE_NAMES
from eligibility.models import Region
from providers.models import Provider


class AccountForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    full_name = forms.CharField(label=_("Full name"), max_length=150)
    role = forms.ChoiceField(label=_("Role"), choices=list(ROLE_NAMES.items()), widget=forms.RadioSelect)
    region = forms.ModelChoiceField(
        label=_("Region"),
        queryset=Region.objects.order_by("path"),
        required=False,
        help_text=_("A community worker: their community. An officer: a subdistrict or district."),
    )
    provider = forms.ModelChoiceField(
        label=_("Provider"),
        queryset=Provider.objects.filter(is_active=True).order_by("code"),
        required=False,
        help_text=_("For provider managers and service staff."),
    )
    employee_number = forms.CharField(label=_("Employee number"), max_length=30, required=False)
    password = forms.CharField(
        label=_("New password"),
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text=_(
            "Only to set a first password or reset a forgotten one; tell it to the person in person."
        ),
    )
    is_active = forms.BooleanField(label=_("May sign in"), required=False, initial=True)

    def __init__(self, *args, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        self.fields["region"].label_from_instance = lambda region: (
            f"{'　' * (region.path.count('/') - 1)}{region.name} ({region.get_level_display()})"
        )
        if editing is not None:
            self.fields["username"].disabled = True
        else:
            self.fields["password"].required = True
            self.fields["password"].label = _("First password")

    def clean(self):
        cleaned = super().clean()
        role = cleaned.get("role")
        if role not in REGION_ROLES:
            cleaned["region"] = None
        if role not in PROVIDER_ROLES:
            cleaned["provider"] = None
        return cleaned


class ReasonForm(forms.Form):
    """Why: suspending or reinstating a provider, deactivating or reactivating a staff member."""

    reason = forms.CharField(label=_("Reason"), max_length=200, widget=forms.Textarea(attrs={"rows": 2}))
