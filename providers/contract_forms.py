"""Forms of the bureau's providers pages: a provider, its suspension, a contract with its priced
items and area, and a service item. They only parse; the services check and write."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from config.errors import DomainError
from eligibility.models import Region
from eligibility.normalise import normalise_phone
from providers.models import Contract, ServiceItem
from providers.services import normalise_credit_code

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


class ContractItemForm(forms.Form):
    service_item = forms.ModelChoiceField(
        label=_("Service item"),
        queryset=ServiceItem.objects.order_by("category", "code"),
        required=False,
        empty_label=_("(none)"),
    )
    unit_price = forms.DecimalField(
        label=_("Unit price (yuan)"),
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        required=False,
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
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
        return cleaned


class BaseContractItemFormSet(forms.BaseFormSet):
    def items(self) -> list[tuple[ServiceItem, Decimal]]:
        """(service item, unit price) of every filled row; blank rows are left out."""
        return [
            (form.cleaned_data["service_item"], form.cleaned_data["unit_price"])
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
