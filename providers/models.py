"""Providers, the service catalogue, contracts with prices and areas, staff and their devices."""

import hashlib
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Mod
from django.db.models.lookups import Exact
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField


class Provider(models.Model):
    """A contracted service company or station (加盟服务商户)."""

    code = models.SlugField(_("code"), max_length=30, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    # Unified social credit code (统一社会信用代码), validated with stdnum's cn.uscc.
    credit_code = models.CharField(_("unified social credit code"), max_length=18, unique=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("provider")
        verbose_name_plural = _("providers")

    def __str__(self):
        return self.name


class ProviderStatusChange(models.Model):
    """The bureau suspended or reinstated a provider: who, when and why (an audit row, never
    changed). The provider's `is_active` holds the state; these rows are its history."""

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="status_changes")
    is_active = models.BooleanField(_("active after the change"))
    reason = models.CharField(_("reason"), max_length=200)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("by")
    )
    changed_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = _("provider suspension or reinstatement")
        verbose_name_plural = _("provider suspensions and reinstatements")
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="provider_status_change_reason"),
        ]

    def __str__(self):
        return f"{self.provider} {self.is_active} {self.changed_at:%Y-%m-%d}"


class ServiceItem(models.Model):
    class Unit(models.TextChoices):
        HOUR = "hour", _("hour")
        VISIT = "visit", _("visit")
        MEAL = "meal", _("meal")

    class Category(models.TextChoices):
        CARE = "care", _("Daily care")
        HOUSEKEEPING = "housekeeping", _("Housekeeping")
        ERRANDS = "errands", _("Shopping and errands")
        COMPANIONSHIP = "companionship", _("Companionship")

    code = models.SlugField(_("code"), max_length=30, unique=True)
    name = models.CharField(_("name"), max_length=50)
    name_en = models.CharField(_("English name"), max_length=50, blank=True)
    unit = models.CharField(_("unit"), max_length=10, choices=Unit.choices)
    category = models.CharField(_("category"), max_length=20, choices=Category.choices)
    # The smallest billable increment: a redemption's quantity is a positive multiple of it.
    # Data, not code: the bureau may bill cleaning by the half hour and meals by the whole meal.
    quantity_step = models.DecimalField(
        _("billing increment"),
        max_digits=4,
        decimal_places=2,
        blank=True,
        help_text=_("The smallest quantity billed: 1 for whole visits or meals, 0.5 for half hours."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    # An item saved without a step gets its unit's (hours in hundredths, as scanned before steps).
    DEFAULT_STEPS = {"hour": Decimal("0.01"), "visit": Decimal("1"), "meal": Decimal("1")}

    class Meta:
        ordering = ["code"]
        verbose_name = _("service item")
        verbose_name_plural = _("service items")
        constraints = [
            models.CheckConstraint(
                condition=Q(unit__in=["hour", "visit", "meal"]), name="service_item_unit_valid"
            ),
            models.CheckConstraint(condition=Q(quantity_step__gt=0), name="service_item_step_positive"),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.quantity_step is None:
            self.quantity_step = self.DEFAULT_STEPS.get(self.unit, Decimal("1"))
        super().save(*args, **kwargs)


class Contract(models.Model):
    """A provider's service agreement (服务协议): period, priced items and service area."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")
        TERMINATED = "terminated", _("Terminated")

    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="contracts")
    number = models.CharField(_("contract number"), max_length=40, unique=True)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE)
    # Each region covers its whole subtree (a subdistrict covers its communities).
    service_area = models.ManyToManyField(
        "eligibility.Region", related_name="contracts", verbose_name=_("service area")
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "-starts_on"]
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        constraints = [
            models.CheckConstraint(condition=Q(ends_on__gte=F("starts_on")), name="contract_period_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended", "terminated"]), name="contract_status_valid"
            ),
        ]

    def __str__(self):
        return self.number


class ContractItem(models.Model):
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="items")
    service_item = models.ForeignKey(ServiceItem, on_delete=models.PROTECT, related_name="contract_items")
    unit_price = MoneyField(_("unit price"), max_digits=10, decimal_places=2, default_currency="CNY")
    # Items priced per hour are recorded by check-in and check-out (签到签退): the visit's length
    # is rounded to the nearest increment (a multiple of 3 minutes, so hours stay in hundredths),
    # and a visit longer than the maximum is an exception for review, not a charge.
    visit_increment_minutes = models.PositiveSmallIntegerField(
        _("visit rounded to (minutes)"),
        default=30,
        help_text=_("Per-hour items: a visit's length is rounded to the nearest multiple of this."),
    )
    visit_max_minutes = models.PositiveSmallIntegerField(
        _("longest visit (minutes)"),
        default=240,
        help_text=_("Per-hour items: a visit not checked out within this is closed as an exception."),
    )

    class Meta:
        ordering = ["contract", "service_item__code"]
        verbose_name = _("contract item")
        verbose_name_plural = _("contract items")
        constraints = [
            models.UniqueConstraint(fields=["contract", "service_item"], name="contract_item_unique"),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="contract_item_price_positive"),
            models.CheckConstraint(
                condition=Q(visit_increment_minutes__gte=3, visit_increment_minutes__lte=240)
                & Exact(Mod("visit_increment_minutes", 3), 0),
                name="contract_item_visit_increment_valid",
            ),
            models.CheckConstraint(
                condition=Q(visit_max_minutes__gte=F("visit_increment_minutes"), visit_max_minutes__lte=1440),
                name="contract_item_visit_max_valid",
            ),
        ]

    def __str__(self):
        return f"{self.contract} {self.service_item.code} {self.unit_price}"


class StaffMember(models.Model):
    """A user working for one provider; scans vouchers from a signed-in device."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="staff_member"
    )
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="staff")
    employee_number = models.CharField(_("employee number"), max_length=30)
    display_name = models.CharField(_("display name"), max_length=50)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["provider", "employee_number"]
        verbose_name = _("staff member")
        verbose_name_plural = _("staff members")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "employee_number"], name="staff_employee_number_unique"
            ),
        ]

    def __str__(self):
        return self.display_name


class Device(models.Model):
    """A staff member's signed-in phone (扫码设备). Only a hash of its token is stored."""

    staff = models.ForeignKey(StaffMember, on_delete=models.PROTECT, related_name="devices")
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=8)
    name = models.CharField(_("device name"), max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("device")
        verbose_name_plural = _("devices")

    def __str__(self):
        return f"{self.staff} {self.token_prefix}…"

    @staticmethod
    def hash_token(raw_token: str) -> str:
        return hashlib.sha256(raw_token.encode()).hexdigest()
