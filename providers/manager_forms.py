"""Forms of a provider manager's team pages: a new staff member, and why one is (de)activated."""

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils.translation import gettext_lazy as _


class StaffMemberForm(forms.Form):
    full_name = forms.CharField(label=_("Full name"), max_length=50)
    employee_number = forms.CharField(
        label=_("Employee number"), max_length=30, help_text=_("Unique within your organisation.")
    )
    username = forms.CharField(
        label=_("Username"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
        help_text=_("What they type to sign in, on the scanner and on these pages."),
    )
    password = forms.CharField(
        label=_("First password"),
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_(
            "At least 8 characters, not only digits, not a common one. Tell it to the person in person."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update({"autocapitalize": "none", "autocomplete": "off"})
