"""Forms of the bureau's policy pages (/policies/).

They parse what was typed: JSON into a condition, a percentage into a rate, a choice into the
tier or care-visit class a rule grants. Every rule of a policy (a valid condition, codes unique in
the draft, a published version fixed) is the service's, and its refusal lands on the field it
names (`EligibilityError.field`). Only the preview validates a condition here, without saving.
"""

import json
from decimal import Decimal

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from eligibility import conditions
from eligibility.errors import EligibilityError
from eligibility.models import CareVisitClass, Policy, PolicyRule, Tier

CONDITION_ROWS = 10
HUNDRED = Decimal(100)


def condition_text(condition) -> str:
    """A stored condition as the editor shows it: indented JSON, Chinese left readable."""
    if not condition:
        return ""
    return json.dumps(condition, ensure_ascii=False, indent=2)


class ConditionField(forms.CharField):
    """A condition typed as JSON. Cleans to the parsed value (any JSON); whether it is a valid
    condition is for `conditions.validate` (the preview) and the service (saving) to say."""

    widget = forms.Textarea

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", True)
        super().__init__(**kwargs)
        self.widget.attrs.update(
            {
                "rows": CONDITION_ROWS,
                "spellcheck": "false",
                "autocapitalize": "off",
                "autocomplete": "off",
                "class": "code-input",
                "placeholder": '{"all": [{"fact": "age", "op": ">=", "value": 80}, '
                '{"fact": "living_arrangement", "op": "in", "value": ["alone"]}]}',
            }
        )

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                _("This is not valid JSON (line %(line)s, column %(column)s): %(problem)s."),
                code="invalid_json",
                params={"line": error.lineno, "column": error.colno, "problem": error.msg},
            ) from None

    def prepare_value(self, value):
        # Bound data is the typed text (shown back as typed); an initial value is a condition.
        return value if isinstance(value, str) else condition_text(value)


class PolicyServiceForm(forms.Form):
    """Put a service's refusal on the field it is about, or above the form when none is named."""

    # A service's field name -> this form's field name, where they differ.
    service_fields: dict[str, str] = {}

    def add_service_error(self, error: EligibilityError) -> None:
        field = self.service_fields.get(error.field, error.field)
        self.add_error(field if field in self.fields else None, error.detail)


class ConditionPreviewMixin:
    """The preview of a condition field: validated by the condition language and put in plain
    words in both languages, nothing saved. A problem lands on the field, with its path."""

    def condition_preview(self, name: str) -> dict | None:
        self.is_valid()  # the other fields' problems show too, but do not hide the preview
        if self.cleaned_data.get(name) is None:
            return None
        try:
            condition = conditions.validate(self.cleaned_data[name])
        except conditions.ConditionError as error:
            self.add_error(name, error.detail)
            return None
        # Shown back indented, as it will be stored: easier to read than one long typed line.
        self.data = self.data.copy()
        self.data[self.add_prefix(name)] = condition_text(condition)
        words = {}
        for language in ("zh-hans", "en"):
            with translation.override(language):
                words[language.split("-")[0]] = conditions.describe(condition)
        return words


class PolicyForm(ConditionPreviewMixin, PolicyServiceForm):
    """A draft's names and the population it covers."""

    name = forms.CharField(label=_("Name"), max_length=100)
    name_en = forms.CharField(label=_("English name"), max_length=100, required=False)
    population = ConditionField(
        label=_("Who the policy covers (condition)"),
        help_text=_("Seniors outside it get no determination at all. For example: aged 60 or over."),
    )
    carry_over_unused = forms.BooleanField(
        label=_("Carry unused balance over to the next month"),
        required=False,
        help_text=_(
            "Off: each month's voucher starts afresh. On: what is left of last month's face value, once "
            "the month is over, is added to this month's voucher (never more than one month's face value)."
        ),
    )

    def __init__(self, *args, policy: Policy, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "name": policy.name,
                "name_en": policy.name_en,
                "population": policy.population,
                "carry_over_unused": policy.carry_over_unused,
            },
        )
        kwargs.setdefault("auto_id", "policy-%s")
        super().__init__(*args, **kwargs)

    def values(self) -> dict:
        return dict(self.cleaned_data)


class CopyForm(forms.Form):
    """A new draft from a version: the same code (its next version) unless another is typed."""

    code = forms.SlugField(
        label=_("Code of the new draft"),
        max_length=40,
        required=False,
        help_text=_("Leave empty for the next version of the same code."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )
    name = forms.CharField(
        label=_("Name of the new draft"),
        max_length=100,
        required=False,
        help_text=_("Leave empty to keep the name."),
    )

    def __init__(self, *args, policy: Policy, **kwargs):
        kwargs.setdefault("auto_id", f"copy-{policy.pk}-%s")
        super().__init__(*args, **kwargs)
        self.fields["code"].widget.attrs["placeholder"] = policy.code
        self.fields["name"].widget.attrs["placeholder"] = policy.name

    def add_service_error(self, error: EligibilityError) -> None:
        # The only refusal a copy has (a draft of that code exists) is about the code.
        self.add_error("code", error.detail)


class TierForm(PolicyServiceForm):
    """The terms of one tier: the share the government pays as a percentage, the face value in ¥."""

    service_fields = {"government_share_rate": "government_share_percent"}

    code = forms.SlugField(
        label=_("Code"),
        max_length=30,
        help_text=_("Letters, digits, - and _; vouchers and reports name the tier by it."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )
    name = forms.CharField(label=_("Name"), max_length=50)
    name_en = forms.CharField(label=_("English name"), max_length=50, required=False)
    rank = forms.IntegerField(
        label=_("Favourability rank"),
        min_value=1,
        max_value=32767,
        help_text=_("1 is the most favourable: a senior matching several tiers gets the lowest rank."),
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    government_share_percent = forms.DecimalField(
        label=_("Government share (%)"),
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("Of the contract price, from 0 to 100; the senior pays the rest."),
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01", "min": "0", "max": "100"}),
    )
    monthly_face_value = forms.DecimalField(
        label=_("Monthly face value (¥)"),
        max_digits=12,
        decimal_places=2,
        min_value=0,
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01", "min": "0"}),
    )

    def __init__(self, *args, tier: Tier | None = None, **kwargs):
        if tier is not None:
            kwargs.setdefault(
                "initial",
                {
                    "code": tier.code,
                    "name": tier.name,
                    "name_en": tier.name_en,
                    "rank": tier.rank,
                    "government_share_percent": percent(tier.government_share_rate),
                    "monthly_face_value": tier.monthly_face_value.amount,
                },
            )
        kwargs.setdefault("auto_id", f"tier-{tier.code}-%s" if tier else "new-tier-%s")
        super().__init__(*args, **kwargs)

    def values(self) -> dict:
        data = self.cleaned_data
        return {
            "code": data["code"],
            "name": data["name"],
            "name_en": data["name_en"],
            "rank": data["rank"],
            "government_share_rate": (data["government_share_percent"] / HUNDRED).quantize(Decimal("0.0001")),
            "monthly_face_value": Money(data["monthly_face_value"], "CNY"),
        }


def percent(rate: Decimal) -> Decimal:
    """0.7000 -> 70, 0.0525 -> 5.25: a rate as a person types and reads it."""
    value = (rate * HUNDRED).quantize(Decimal("0.01"))
    return value.to_integral_value() if value == value.to_integral_value() else value.normalize()


TIER_CHOICE = "tier:"
CARE_CHOICE = "care:"


class RuleForm(ConditionPreviewMixin, PolicyServiceForm):
    """A rule: its code, labels, what it grants (a tier of this draft or a care-visit class) and
    its condition as JSON."""

    service_fields = {"tier": "grants", "care_visit_class": "grants"}

    code = forms.SlugField(
        label=_("Rule code"),
        max_length=50,
        help_text=_("Letters, digits, - and _; a determination records the codes of the rules it matched."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}),
    )
    label = forms.CharField(label=_("Label (Chinese)"), max_length=200)
    label_en = forms.CharField(label=_("English label"), max_length=200, required=False)
    grants = forms.ChoiceField(label=_("Grants"))
    condition = ConditionField(label=_("Condition (JSON)"))

    def __init__(
        self, *args, policy: Policy, rule: PolicyRule | None = None, tiers: list[Tier] | None = None, **kwargs
    ):
        if rule is not None:
            kwargs.setdefault(
                "initial",
                {
                    "code": rule.code,
                    "label": rule.label,
                    "label_en": rule.label_en,
                    "grants": f"{TIER_CHOICE}{rule.tier_id}"
                    if rule.tier_id
                    else f"{CARE_CHOICE}{rule.care_visit_class}",
                    "condition": rule.condition,
                },
            )
        # A stable id per rule (its code when the page was drawn), so a person or a test finds
        # the condition of "low_fee_hardship" at #rule-low_fee_hardship-condition.
        kwargs.setdefault("auto_id", f"rule-{rule.code}-%s" if rule else "new-rule-%s")
        super().__init__(*args, **kwargs)
        # The draft's tiers, read once for a page of many rule forms when it passes them in.
        tiers = tiers if tiers is not None else policy.tiers.order_by("rank")
        self.tiers = {str(tier.pk): tier for tier in tiers}
        self.fields["grants"].choices = [
            (
                _("Tier"),
                [(f"{TIER_CHOICE}{pk}", f"{tier.name} ({tier.code})") for pk, tier in self.tiers.items()],
            ),
            (
                _("Care-visit class"),
                [(f"{CARE_CHOICE}{value}", label) for value, label in CareVisitClass.choices],
            ),
        ]

    def values(self) -> dict:
        data = self.cleaned_data
        grants = data["grants"]
        if grants.startswith(TIER_CHOICE):
            tier, care = self.tiers[grants.removeprefix(TIER_CHOICE)], ""
        else:
            tier, care = None, grants.removeprefix(CARE_CHOICE)
        return {
            "code": data["code"],
            "label": data["label"],
            "label_en": data["label_en"],
            "tier": tier,
            "care_visit_class": care,
            "condition": data["condition"],
        }


class ActivateForm(PolicyServiceForm):
    """The date a draft comes into force (a refusal about the date, or an overlap, lands here)."""

    effective_from = forms.DateField(
        label=_("In force from"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("Today or later; usually the first day of a month, before its vouchers are issued."),
    )

    def add_service_error(self, error: EligibilityError) -> None:
        # A refusal about when (in the past, overlapping a scheduled version) belongs to the date.
        if error.code == "policy_overlap" or error.field == "effective_from":
            self.add_error("effective_from", error.detail)
        else:
            self.add_error(None, error.detail)
