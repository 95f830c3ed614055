"""Forms of the bureau's providers pages: a provider, its suspension, a contract with its priced
items and area, and a service item. They only parse; the services check and write."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from eligibility.models import Region
from eligibility.normalise import normalise_phone
from providers.models import Contract, ServiceItem
from providers.services import (
    DEFAULT_VISIT_INCREMENT,
    DEFAULT_VISIT_MAX,
    ContractItemTerms,
    check_visit_limits,
    normalise_credit_code,
)

# The contract's statuses as its page says them ("Active" alone reads as a senior's status).
CONTRACT_STATUS_NAMES = {
    Contract.Status.ACTIVE: _("In force"),
    Contract.Status.SUSPENDED: _("Suspended"),
    Contract.Status.TERMINATED: _("Terminated"),
}


NOT_OFFERED = _("not offered")  # an item no longer in the catalogue, still on an old contract


class ServiceErrors:
    """Show a service's refusal (a `DomainError`) on its field, or above the form."""

    def add_service_error(self, error) -> None:
        field = error.field if error.field in self.fields else None
        self.add_error(field, error.detail)


class ProviderForm(ServiceErrors, forms.Form):
    code = forms.SlugField(
        label=_("Code"),
        max_length=30,
        help_text=_(
            "Short, in letters and digits, e.g. kangle. Fixed once saved: exports and commands use it."
        ),
    )
    name = forms.CharField(label=_("Name"), max_length=100)
    name_en = forms.CharField(label=_("English name"), max_length=100, required=False)
    credit_code = forms.CharField(
        label=_("Unified social credit code"),
        max_length=40,
        help_text=_("18 characters, from the business licence."),
        widget=forms.TextInput(
            attrs={"autocapitalize": "characters", "autocomplete": "off", "spellcheck": "false"}
        ),
    )
    contact_phone = forms.CharField(
        label=_("Service hotline"),
        max_length=30,
        required=False,
        help_text=_("A mobile number or an area code and number, e.g. 0571-87001234."),
        widget=forms.TextInput(attrs={"type": "tel", "inputmode": "tel", "autocomplete": "off"}),
    )

    def __init__(self, *args, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        if editing is not None:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _("Fixed: exports and commands use it.")

    # The same pure checks as the service's, here so that every wrong field is marked at once.
    def clean_credit_code(self):
        return self._checked(normalise_credit_code, self.cleaned_data["credit_code"])

    def clean_contact_phone(self):
        return self._checked(
            lambda raw: normalise_phone(raw, field="contact_phone"), self.cleaned_data["contact_phone"]
        )

    @staticmethod
    def _checked(check, raw):
        try:
            return check(raw)
        except DomainError as error:
            raise forms.ValidationError(error.detail, code=error.code) from None


class ContractForm(ServiceErrors, forms.Form):
    number = forms.CharField(label=_("Contract number"), max_length=40)
    # A date input takes ISO dates whatever the page's language (zh-Hans formats them 2026/01/01).
    starts_on = forms.DateField(
        label=_("First day"), widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )
    ends_on = forms.DateField(
        label=_("Last day"), widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )
    status = forms.ChoiceField(
        label=_("Status"), choices=list(CONTRACT_STATUS_NAMES.items()), widget=forms.RadioSelect
    )
    service_area = forms.ModelMultipleChoiceField(
        label=_("Service area"),
        queryset=Region.objects.all(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one region.")},
    )


class ServiceItemSelect(forms.Select):
    """Each option carries its item's unit (`data-unit`), so that the page's CSS shows a row's
    check-in and check-out fields only while an item priced per hour is chosen, without script."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        instance = getattr(value, "instance", None)
        if instance is not None:
            option["attrs"]["data-unit"] = instance.unit
        return option


VISIT_FIELDS = ("visit_increment_minutes", "visit_max_minutes")


def _minutes_input():
    # No min, max or step in the HTML: a hidden row's input must never block the form's sending.
    return forms.NumberInput(attrs={"inputmode": "numeric"})


class ContractItemForm(forms.Form):
    service_item = forms.ModelChoiceField(
        label=_("Service item"),
        queryset=ServiceItem.objects.order_by("category", "code"),
        required=False,
        empty_label=_("(none)"),
        widget=ServiceItemSelect,
    )
    unit_price = forms.DecimalField(
        label=_("Unit price (yuan)"),
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
    )
    # Only for items priced per hour (checked in and out); other rows keep what they have.
    # Text parsed in clean(): a row of another item is not refused for what it does not use.
    visit_increment_minutes = forms.CharField(
        label=_("Rounded to (minutes)"),
        max_length=6,
        required=False,
        initial=DEFAULT_VISIT_INCREMENT,
        widget=_minutes_input(),
    )
    visit_max_minutes = forms.CharField(
        label=_("Longest visit (minutes)"),
        max_length=6,
        required=False,
        initial=DEFAULT_VISIT_MAX,
        widget=_minutes_input(),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["service_item"].label_from_instance = lambda item: (
            f"{item.name} · {item.get_unit_display()}" + ("" if item.is_active else f" ({NOT_OFFERED})")
        )

    def clean(self):
        cleaned = super().clean()
        item, price = cleaned.get("service_item"), cleaned.get("unit_price")
        if item is not None and price is None and "unit_price" not in self.errors:
            self.add_error("unit_price", _("Give the unit price."))
        if item is None and price is not None:
            self.add_error("service_item", _("Choose the service item."))
        limits = self._visit_limits(item) if item is not None and item.unit == ServiceItem.Unit.HOUR else {}
        for field in VISIT_FIELDS:
            cleaned[field] = limits.get(field)
        return cleaned

    def _visit_limits(self, item: ServiceItem) -> dict[str, int | None]:
        """The row's rounding and longest visit, each checked on its field. A field the request
        did not send at all is None (the item keeps its value); one sent empty is an error."""
        limits: dict[str, int | None] = {}
        for field in VISIT_FIELDS:
            raw = (self.cleaned_data.get(field) or "").strip()
            if not raw and self.add_prefix(field) not in self.data:
                limits[field] = None
            elif raw.isdecimal() and len(raw) <= 4:
                limits[field] = int(raw)
            else:
                self.add_error(field, _("Give a whole number of minutes."))
                return {}
        try:
            check_visit_limits(
                service_item=item,
                increment_minutes=limits["visit_increment_minutes"],
                max_minutes=limits["visit_max_minutes"],
            )
        except DomainError as error:
            self.add_error(error.field, error.detail)
            return {}
        return limits


class BaseContractItemFormSet(forms.BaseFormSet):
    def items(self) -> list[ContractItemTerms]:
        """The terms of every filled row, for `save_contract`; blank rows are left out."""
        return [
            ContractItemTerms(
                service_item=form.cleaned_data["service_item"],
                unit_price=form.cleaned_data["unit_price"],
                visit_increment_minutes=form.cleaned_data["visit_increment_minutes"],
                visit_max_minutes=form.cleaned_data["visit_max_minutes"],
            )
            for form in self.forms
            if not self._should_delete_form(form) and form.cleaned_data.get("service_item") is not None
        ]


ContractItemFormSet = forms.formset_factory(
    ContractItemForm, formset=BaseContractItemFormSet, extra=0, max_num=60, validate_max=True, can_delete=True
)
BLANK_ITEM_ROWS = 3  # empty rows under the contract's items: enough without any JavaScript


class ServiceItemForm(ServiceErrors, forms.Form):
    code = forms.SlugField(
        label=_("Code"), max_length=30, help_text=_("The scanner sends it; fixed once saved.")
    )
    name = forms.CharField(label=_("Name"), max_length=50)
    name_en = forms.CharField(label=_("English name"), max_length=50, required=False)
    unit = forms.ChoiceField(label=_("Unit"), choices=ServiceItem.Unit.choices, widget=forms.RadioSelect)
    quantity_step = forms.DecimalField(
        label=_("Billing increment"),
        max_digits=4,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=_(
            "The smallest quantity billed, in the unit above: 1 for whole visits or meals, 0.5 for "
            "half hours. A scan of another quantity is refused."
        ),
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
    )
    category = forms.ChoiceField(label=_("Category"), choices=ServiceItem.Category.choices)
    is_active = forms.BooleanField(label=_("Offered (providers may record it)"), required=False, initial=True)

    def __init__(self, *args, editing=None, **kwargs):
        super().__init__(*args, **kwargs)
        if editing is not None:
            self.fields["code"].disabled = True
