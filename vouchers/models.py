"""Vouchers and the redemption ledger.

A redemption is an immutable, priced fact; a void is a second fact pointing at it. The
government-share balance of a voucher is guarded by a check constraint (0 ≤ balance ≤ face
value) and debited under a row lock in the same transaction as the redemption's insert.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField


def money_field(verbose_name):
    return MoneyField(verbose_name, max_digits=12, decimal_places=2, default_currency="CNY")


class Voucher(models.Model):
    """One senior's entitlement for one month (服务券), with a snapshot of the tier's terms."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        REVOKED = "revoked", _("Revoked")

    senior = models.ForeignKey("eligibility.Senior", on_delete=models.PROTECT, related_name="vouchers")
    determination = models.ForeignKey(
        "eligibility.Determination", on_delete=models.PROTECT, related_name="vouchers"
    )
    # The first day of the month the voucher is for.
    period = models.DateField(_("month"))
    tier = models.ForeignKey("eligibility.Tier", on_delete=models.PROTECT, related_name="vouchers")
    tier_code = models.SlugField(_("tier"), max_length=30)
    government_share_rate = models.DecimalField(_("government share rate"), max_digits=5, decimal_places=4)
    face_value = money_field(_("face value"))
    balance = money_field(_("balance"))
    valid_from = models.DateField(_("valid from"))
    valid_until = models.DateField(_("valid until"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    # Bumped to revoke every QR code printed so far (a lost paper voucher) without a new voucher:
    # `services.reissue_voucher`, which leaves a VoucherReissue row.
    token_version = models.PositiveIntegerField(default=1)
    issued_at = models.DateTimeField(_("issued at"))
    # When the whole voucher was revoked (the senior moved out or died), for the scanners' feed.
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-period", "id"]
        verbose_name = _("voucher")
        verbose_name_plural = _("vouchers")
        constraints = [
            models.UniqueConstraint(fields=["senior", "period"], name="voucher_one_per_senior_month"),
            models.CheckConstraint(condition=Q(balance__gte=0), name="voucher_balance_non_negative"),
            models.CheckConstraint(
                condition=Q(balance__lte=F("face_value")), name="voucher_balance_le_face_value"
            ),
            models.CheckConstraint(condition=Q(face_value__gte=0), name="voucher_face_value_non_negative"),
            models.CheckConstraint(
                condition=Q(valid_until__gte=F("valid_from")), name="voucher_validity_valid"
            ),
            models.CheckConstraint(
                condition=Q(government_share_rate__gte=0) & Q(government_share_rate__lte=1),
                name="voucher_share_rate_0_1",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "expired", "revoked"]), name="voucher_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["period", "status"]),
            models.Index(
                fields=["revoked_at"], condition=Q(revoked_at__isnull=False), name="voucher_revoked_at"
            ),
        ]
        permissions = [("reissue_voucher", "Can reissue a voucher (a new QR code, the old one refused)")]

    def __str__(self):
        return f"{self.period:%Y-%m} #{self.pk}"


class VoucherReissue(models.Model):
    """A new QR code for a voucher (a lost or damaged card, 补发): from `reissued_at` the codes of
    versions before `new_version` are refused `voucher_revoked`, online and, after their next
    sync (GET /api/v1/scanner/revocations/), on scanners offline. Never updated."""

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="reissues")
    old_version = models.PositiveIntegerField()
    new_version = models.PositiveIntegerField()
    reason = models.CharField(_("reason"), max_length=200)
    reissued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reissued by"),
    )
    reissued_at = models.DateTimeField(_("reissued at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("voucher reissue")
        verbose_name_plural = _("voucher reissues")
        constraints = [
            models.CheckConstraint(
                condition=Q(new_version__gt=F("old_version")), name="voucher_reissue_version_increases"
            ),
            models.UniqueConstraint(fields=["voucher", "new_version"], name="voucher_reissue_version_unique"),
            models.CheckConstraint(condition=~Q(reason=""), name="voucher_reissue_has_reason"),
        ]

    def __str__(self):
        return f"#{self.voucher_id} v{self.old_version} → v{self.new_version}"


class Redemption(models.Model):
    """One service delivered and recorded by scanning a voucher (核销). Never updated."""

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="redemptions")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="redemptions")
    contract_item = models.ForeignKey(
        "providers.ContractItem", on_delete=models.PROTECT, related_name="redemptions"
    )
    service_item = models.ForeignKey(
        "providers.ServiceItem", on_delete=models.PROTECT, related_name="redemptions"
    )
    staff = models.ForeignKey("providers.StaffMember", on_delete=models.PROTECT, related_name="redemptions")
    device = models.ForeignKey(
        "providers.Device", on_delete=models.PROTECT, null=True, blank=True, related_name="redemptions"
    )
    quantity = models.DecimalField(_("quantity"), max_digits=7, decimal_places=2)
    # Priced once, at the moment of service; later price or policy changes never rewrite these.
    unit_price = money_field(_("unit price"))
    amount = money_field(_("amount"))
    government_share = money_field(_("government share"))
    senior_share = money_field(_("senior share"))
    tier_code = models.SlugField(_("tier"), max_length=30)
    government_share_rate = models.DecimalField(_("government share rate"), max_digits=5, decimal_places=4)
    # The settlement month (first day, Asia/Shanghai) the service belongs to.
    service_month = models.DateField(_("service month"))
    served_at = models.DateTimeField(_("served at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    idempotency_key = models.CharField(max_length=64)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "idempotency_key"], name="redemption_idempotency_unique"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="redemption_quantity_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="redemption_amount_non_negative"),
            models.CheckConstraint(
                condition=Q(government_share__gte=0), name="redemption_gov_share_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(senior_share__gte=0), name="redemption_senior_share_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(amount=Round(F("government_share") + F("senior_share"), 2)),
                name="redemption_shares_add_up",
            ),
        ]
        indexes = [
            models.Index(fields=["service_month", "provider"]),
            models.Index(fields=["device", "-recorded_at"]),
        ]

    def __str__(self):
        return f"#{self.pk} {self.service_item_id} {self.amount}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("A redemption is immutable; record a void instead.")
        super().save(*args, **kwargs)


class RedemptionVoid(models.Model):
    """The cancellation of a redemption (撤销): a new fact, at most one per redemption."""

    redemption = models.OneToOneField(Redemption, on_delete=models.PROTECT, related_name="void")
    reason = models.CharField(_("reason"), max_length=200)
    voided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    voided_at = models.DateTimeField(_("voided at"), auto_now_add=True)
    # What went back onto the voucher's balance (zero when the voucher was no longer valid).
    credited_back = money_field(_("credited back"))

    class Meta:
        ordering = ["-voided_at"]
        verbose_name = _("void")
        verbose_name_plural = _("voids")
        constraints = [
            models.CheckConstraint(condition=~Q(reason=""), name="void_reason_required"),
            models.CheckConstraint(condition=Q(credited_back__gte=0), name="void_credit_non_negative"),
        ]


class ScanAttempt(models.Model):
    """Every scan, refused ones too (扫码记录): misuse must be visible, not silent."""

    device = models.ForeignKey("providers.Device", on_delete=models.SET_NULL, null=True, related_name="+")
    staff = models.ForeignKey("providers.StaffMember", on_delete=models.SET_NULL, null=True, related_name="+")
    voucher = models.ForeignKey(Voucher, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=10)  # verify | redeem
    outcome = models.CharField(max_length=40)  # "ok" or the refusal code
    # SHA-256 of what was scanned: lets us match repeats without keeping the token itself.
    scanned_hash = models.CharField(max_length=64)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["device", "-at"])]


class ClosedMonth(models.Model):
    """A month whose redemption ledger is closed by settlement: nothing in it may change.

    Written by the settlement in the same transaction as the statements; `redeem` and `void`
    refuse with `period_closed` once it exists. Kept here so the ledger does not depend on billing.
    """

    month = models.DateField(unique=True)
    closed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-month"]
