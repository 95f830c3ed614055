"""Vouchers and the redemption ledger.

A redemption is an immutable, priced fact; a void is a second fact pointing at it. The
government-share balance of a voucher is guarded by a check constraint (0 ≤ balance ≤ face
value plus what was carried over) and debited under a row lock in the same transaction as the
redemption's insert.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Length, Round
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
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

    # Issuance writes two million rows in one statement, so this table keeps only the indexes
    # and per-row checks it needs (bench/issue.py measures each): the (senior, month) unique
    # index also serves every "this senior's vouchers" query. Senior, determination and tier are
    # checked once per statement instead of once per row, by the triggers of migration 0006: the
    # row matches its determination (that senior's, with that tier), which is never deleted and
    # keeps its senior by its own foreign key; a published tier is never deleted (eligibility 0008).
    senior = models.ForeignKey(
        "eligibility.Senior",
        on_delete=models.PROTECT,
        related_name="vouchers",
        db_constraint=False,
        db_index=False,
    )
    determination = models.ForeignKey(
        "eligibility.Determination",
        on_delete=models.PROTECT,
        related_name="vouchers",
        db_constraint=False,
        db_index=False,
    )
    # The first day of the month the voucher is for.
    period = models.DateField(_("month"))
    # DO_NOTHING: Django would otherwise look through every voucher (no index) each time a
    # draft's tier is deleted; a published tier, the only kind vouchers name, is never deleted.
    tier = models.ForeignKey(
        "eligibility.Tier",
        on_delete=models.DO_NOTHING,
        related_name="vouchers",
        db_constraint=False,
        db_index=False,
    )
    tier_code = models.SlugField(_("tier"), max_length=30, db_index=False)
    government_share_rate = models.DecimalField(_("government share rate"), max_digits=5, decimal_places=4)
    face_value = money_field(_("face value"))
    balance = money_field(_("balance"))
    # What was left of last month's face value, added once that month was over, where the
    # policy carries unused balance over (default off); in CNY.
    carried_over = models.DecimalField(
        _("carried over"),
        max_digits=12,
        decimal_places=2,
        default=Decimal("0.00"),
        db_default=Decimal("0.00"),
    )
    carried_over_at = models.DateTimeField(_("carried over at"), null=True, blank=True)
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
                condition=Q(balance__lte=F("face_value") + F("carried_over")),
                name="voucher_balance_le_entitlement",
            ),
            models.CheckConstraint(
                condition=Q(carried_over__gte=0), name="voucher_carried_over_non_negative"
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
            # Status first: expiring last month's active vouchers reads only the active ones.
            models.Index(fields=["status", "period"], name="voucher_status_period"),
            models.Index(
                fields=["revoked_at"], condition=Q(revoked_at__isnull=False), name="voucher_revoked_at"
            ),
        ]
        permissions = [("reissue_voucher", "Can reissue a voucher (a new QR code, the old one refused)")]

    def __str__(self):
        return f"{self.period:%Y-%m} #{self.pk}"


class IssuanceRun(models.Model):
    """One run of a month's issuance (who or which job, when, how many): the record that makes it
    attributable, and the mark from which a re-run looks for new determinations only."""

    period = models.DateField(_("month"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    issued = models.PositiveIntegerField(_("vouchers issued"))
    expired = models.PositiveIntegerField(_("vouchers expired"))
    carried_over = models.PositiveIntegerField(_("vouchers given last month's unused balance"), default=0)
    # Every determination up to this id had been considered: a re-run reads only newer ones.
    last_determination_id = models.BigIntegerField(default=0)
    incremental = models.BooleanField(_("only new determinations"), default=False)
    run_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("run by"),
    )
    job = models.CharField(_("job"), max_length=60, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("issuance run")
        verbose_name_plural = _("issuance runs")
        indexes = [models.Index(fields=["period", "-last_determination_id"], name="issuance_run_period")]

    def __str__(self):
        return f"{self.period:%Y-%m} +{self.issued}"


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
    # Proof of service (DESIGN.md §4.5): an hourly service's arrival and departure (check-in and
    # check-out), and where the phone said it was when the card was scanned (at arrival).
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    location_accuracy = models.PositiveIntegerField(_("location accuracy (m)"), null=True, blank=True)
    # Scanned while the phone was offline and sent later: priced as of `served_at`, the phone's time.
    offline = models.BooleanField(_("recorded offline"), default=False)
    # Unique per staff member: two people's phones never share a key's space.
    idempotency_key = models.CharField(max_length=64)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            # A key is the staff member's own, on all their phones: a phone signed in again
            # (a new device) resends its queue under the same keys and is answered from the record.
            models.UniqueConstraint(
                fields=["staff", "idempotency_key"], name="redemption_idempotency_per_staff"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True)
                | Q(started_at__isnull=False, ended_at__gte=F("started_at")),
                name="redemption_visit_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="redemption_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="redemption_longitude_range",
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


class Visit(models.Model):
    """A visit of an item priced per hour (签到签退): opened by scanning the card at arrival
    (check-in), closed by scanning it again at departure (check-out), which records the priced
    redemption. One open visit per staff member: nobody is in two homes at once. A visit left
    open past its maximum is closed as `overdue`, an exception for review, and charges nothing."""

    class Status(models.TextChoices):
        OPEN = "open", _("In progress")
        CLOSED = "closed", _("Checked out")
        OVERDUE = "overdue", _("Not checked out in time")
        CANCELLED = "cancelled", _("Cancelled")

    voucher = models.ForeignKey(Voucher, on_delete=models.PROTECT, related_name="visits")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="visits")
    contract_item = models.ForeignKey(
        "providers.ContractItem", on_delete=models.PROTECT, related_name="visits"
    )
    service_item = models.ForeignKey("providers.ServiceItem", on_delete=models.PROTECT, related_name="visits")
    staff = models.ForeignKey("providers.StaffMember", on_delete=models.PROTECT, related_name="visits")
    device = models.ForeignKey(
        "providers.Device", on_delete=models.PROTECT, null=True, blank=True, related_name="visits"
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    started_at = models.DateTimeField(_("checked in at"))
    # The contract item's rounding and maximum when the visit began (a later edit changes nothing).
    increment_minutes = models.PositiveSmallIntegerField(_("rounded to (minutes)"))
    max_minutes = models.PositiveSmallIntegerField(_("longest visit (minutes)"))
    deadline = models.DateTimeField(_("check out by"))
    ended_at = models.DateTimeField(_("checked out at"), null=True, blank=True)
    check_in_key = models.CharField(max_length=64)
    check_out_key = models.CharField(max_length=64, blank=True)
    offline = models.BooleanField(_("checked in offline"), default=False)
    latitude = models.DecimalField(_("latitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("longitude"), max_digits=9, decimal_places=6, null=True, blank=True)
    location_accuracy = models.PositiveIntegerField(_("location accuracy (m)"), null=True, blank=True)
    end_latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    end_longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    end_location_accuracy = models.PositiveIntegerField(null=True, blank=True)
    redemption = models.OneToOneField(
        Redemption, on_delete=models.PROTECT, null=True, blank=True, related_name="visit"
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    close_reason = models.CharField(_("reason"), max_length=200, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        constraints = [
            models.UniqueConstraint(
                fields=["staff"], condition=Q(status="open"), name="visit_one_open_per_staff"
            ),
            models.UniqueConstraint(fields=["staff", "check_in_key"], name="visit_check_in_key_per_staff"),
            models.CheckConstraint(
                condition=Q(status__in=["open", "closed", "overdue", "cancelled"]), name="visit_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="closed", redemption__isnull=False, ended_at__isnull=False)
                | (~Q(status="closed") & Q(redemption__isnull=True)),
                name="visit_closed_has_redemption",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="visit_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(increment_minutes__gt=0, max_minutes__gte=F("increment_minutes")),
                name="visit_limits_valid",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "deadline"], name="visit_open_deadline"),
            models.Index(fields=["staff", "-started_at"], name="visit_staff_time"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.service_item_id} {self.status}"


class ScanAttempt(models.Model):
    """Every scan, refused ones too (扫码记录): misuse must be visible, not silent."""

    device = models.ForeignKey("providers.Device", on_delete=models.SET_NULL, null=True, related_name="+")
    staff = models.ForeignKey("providers.StaffMember", on_delete=models.SET_NULL, null=True, related_name="+")
    voucher = models.ForeignKey(Voucher, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    action = models.CharField(max_length=10)  # verify | redeem | check_in | check_out | void
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


class Dispute(models.Model):
    """A senior's or family's "this service did not happen" (异议), filed on the senior's page
    without signing in (`services.file_dispute`). Open until the bureau has checked it.

    No raw address is kept: `client_hash` is a keyed hash (HMAC, SECRET_KEY) of the client's
    IPv4 address or IPv6 /64, enough to see and limit many disputes from one client.
    """

    class Status(models.TextChoices):
        OPEN = "open", _("To be checked")
        CLOSED = "closed", _("Checked")

    redemption = models.ForeignKey(
        Redemption, on_delete=models.PROTECT, related_name="disputes", verbose_name=_("redemption")
    )
    note = models.CharField(_("note"), max_length=500, blank=True)
    # Where the bureau may call back (normalised as the seniors' phones are); optional.
    callback_phone = models.CharField(_("callback phone"), max_length=20, blank=True)
    client_hash = models.CharField(_("client (hashed)"), max_length=64)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(_("filed at"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        constraints = [
            # A repeat of an open dispute is answered "already recorded", never a second row.
            models.UniqueConstraint(
                fields=["redemption"], condition=Q(status="open"), name="dispute_one_open_per_redemption"
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("note"), 500), name="dispute_note_length"
            ),
            models.CheckConstraint(condition=Q(status__in=["open", "closed"]), name="dispute_status_valid"),
        ]
        indexes = [
            models.Index(fields=["client_hash", "created_at"], name="dispute_client_time"),
            models.Index(fields=["status", "-created_at"], name="dispute_status_time"),
        ]

    def __str__(self):
        return f"#{self.pk} {self.redemption_id} {self.status}"
