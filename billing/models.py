"""Settlement periods, statements (结算单), their lines, adjustments (调整) and reconciliation checks.

The life of a month (DESIGN.md §3, issue 10):

    period     open ──settle──▶ closed ─────────────(every statement paid)──────────▶ locked
    statement           draft ──review──▶ reviewed ──approve──▶ approved ──mark_paid──▶ paid

`settle` closes the month to new scans and drafts one statement per provider; it may run again
(identical figures) until a statement of the month is approved. Approval needs a second finance
user (four eyes): the database refuses `approved_by = prepared_by`, and for a statement a job
prepared, `approved_by = reviewed_by`. A correction after the month
is closed is an `Adjustment` that lands in the next open month's statement (§6.3).

Each write is attributable: a user, or a scheduled job by name (`…_job`, a text column), never
both and never neither. The database checks that every state has the fields it needs.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField


def money_field(verbose_name, **kwargs):
    return MoneyField(verbose_name, max_digits=14, decimal_places=2, default_currency="CNY", **kwargs)


def _user(verbose_name):
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=verbose_name,
    )


def _one_actor(user: str, job: str, when: str) -> Q:
    """Before `when`: no actor; from it on: exactly one of a user and a job name."""
    return Q(**{f"{when}__isnull": True, f"{user}__isnull": True, job: ""}) | Q(
        Q(**{f"{when}__isnull": False})
        & (Q(**{f"{user}__isnull": False, job: ""}) | (Q(**{f"{user}__isnull": True}) & ~Q(**{job: ""})))
    )


class SettlementPeriod(models.Model):
    """One calendar month (Asia/Shanghai): open to scans, closed by `settle`, locked once paid."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")
        LOCKED = "locked", _("Locked")

    month = models.DateField(_("month"), unique=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.OPEN)
    # The last `settle` of the month: who (a user or a job by name) and when.
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    settled_by = _user(_("settled by"))
    settled_by_job = models.CharField(_("settled by (job)"), max_length=60, blank=True)
    locked_at = models.DateTimeField(_("locked at"), null=True, blank=True)

    class Meta:
        ordering = ["-month"]
        verbose_name = _("settlement period")
        verbose_name_plural = _("settlement periods")
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["open", "closed", "locked"]), name="period_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(state="open", settled_at__isnull=True, locked_at__isnull=True)
                | Q(state="closed", settled_at__isnull=False, locked_at__isnull=True)
                | Q(state="locked", settled_at__isnull=False, locked_at__isnull=False),
                name="period_state_fields",
            ),
            models.CheckConstraint(
                condition=_one_actor("settled_by", "settled_by_job", "settled_at"),
                name="period_settled_by_one",
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m}"

    @property
    def settler(self) -> str:
        """Who settled the month last, for a page: the user's name, or the job's."""
        if self.settled_by_id:
            return self.settled_by.get_full_name() or self.settled_by.get_username()
        return self.settled_by_job


class Statement(models.Model):
    """One provider's settlement for one month: its figures are the sum of its lines.

    `redemption_count` counts the services paid (the month's redemptions less those voided while
    the month was open, which `void_count` counts); `adjustment_count` the adjustments that landed
    here from closed months. The totals include the adjustments (they may be negative).
    """

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        REVIEWED = "reviewed", _("Reviewed")
        APPROVED = "approved", _("Approved")
        PAID = "paid", _("Paid")

    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="statements")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="statements")
    # The provider's name as it was when the statement was drafted: an approved statement (and its
    # workbook) keeps it whatever the registry says later.
    provider_name = models.CharField(_("provider name (as settled)"), max_length=100, blank=True, default="")
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.DRAFT)
    redemption_count = models.PositiveIntegerField(_("redemptions"))
    void_count = models.PositiveIntegerField(_("voided in the month"), default=0)
    adjustment_count = models.PositiveIntegerField(_("adjustments"), default=0)
    total_amount = money_field(_("total amount"))
    government_total = money_field(_("government share"))
    senior_total = money_field(_("senior co-pay"))
    created_at = models.DateTimeField(auto_now_add=True)
    prepared_at = models.DateTimeField(_("prepared at"))
    prepared_by = _user(_("prepared by"))
    prepared_by_job = models.CharField(_("prepared by (job)"), max_length=60, blank=True)
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    reviewed_by = _user(_("reviewed by"))
    review_note = models.TextField(_("review note"), blank=True)
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    approved_by = _user(_("approved by"))
    due_date = models.DateField(_("payment due"), null=True, blank=True)
    paid_on = models.DateField(_("paid on"), null=True, blank=True)
    paid_at = models.DateTimeField(_("payment recorded at"), null=True, blank=True)
    paid_by = _user(_("payment recorded by"))
    payment_reference = models.CharField(_("payment reference"), max_length=100, blank=True)

    class Meta:
        ordering = ["period", "provider"]
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        constraints = [
            models.UniqueConstraint(fields=["period", "provider"], name="statement_one_per_provider_period"),
            models.CheckConstraint(
                condition=Q(total_amount=Round(F("government_total") + F("senior_total"), 2)),
                name="statement_shares_add_up",
            ),
            models.CheckConstraint(
                condition=Q(state__in=["draft", "reviewed", "approved", "paid"]), name="statement_state_valid"
            ),
            models.CheckConstraint(
                condition=_one_actor("prepared_by", "prepared_by_job", "prepared_at")
                & Q(prepared_at__isnull=False),
                name="statement_prepared_by_one",
            ),
            # Four eyes: whoever prepared the statement does not approve it; a statement a
            # scheduled job prepared is approved by someone other than its reviewer.
            models.CheckConstraint(
                condition=Q(approved_by__isnull=True)
                | Q(prepared_by__isnull=False) & ~Q(approved_by=F("prepared_by"))
                | Q(prepared_by__isnull=True, reviewed_by__isnull=False) & ~Q(approved_by=F("reviewed_by")),
                name="statement_four_eyes",
            ),
            models.CheckConstraint(
                condition=(
                    Q(state="draft", reviewed_at__isnull=True, reviewed_by__isnull=True)
                    | Q(
                        state__in=["reviewed", "approved", "paid"],
                        reviewed_at__isnull=False,
                        reviewed_by__isnull=False,
                    )
                )
                & (
                    Q(
                        state__in=["draft", "reviewed"],
                        approved_at__isnull=True,
                        approved_by__isnull=True,
                        due_date__isnull=True,
                    )
                    | Q(
                        state__in=["approved", "paid"],
                        approved_at__isnull=False,
                        approved_by__isnull=False,
                        due_date__isnull=False,
                    )
                )
                & (
                    Q(
                        state__in=["draft", "reviewed", "approved"],
                        paid_on__isnull=True,
                        paid_at__isnull=True,
                        paid_by__isnull=True,
                        payment_reference="",
                    )
                    | (
                        Q(state="paid", paid_on__isnull=False, paid_at__isnull=False, paid_by__isnull=False)
                        & ~Q(payment_reference="")
                    )
                ),
                name="statement_state_fields",
            ),
        ]
        indexes = [models.Index(fields=["state", "due_date"], name="statement_state_due")]

    def __str__(self):
        return f"{self.period} {self.provider}"

    @property
    def preparer(self) -> str:
        if self.prepared_by_id:
            return self.prepared_by.get_full_name() or self.prepared_by.get_username()
        return self.prepared_by_job


class StatementLine(models.Model):
    """The totals of one tier and one service item within a statement: the services of the month
    (`service`), or the adjustments that landed in it (`adjustment`, possibly negative)."""

    class Kind(models.TextChoices):
        SERVICE = "service", _("Services")
        ADJUSTMENT = "adjustment", _("Adjustments")

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.SERVICE)
    tier_code = models.SlugField(_("tier"), max_length=30)
    service_item = models.ForeignKey("providers.ServiceItem", on_delete=models.PROTECT, related_name="+")
    service_item_name = models.CharField(
        _("service item (as settled)"), max_length=50, blank=True, default=""
    )
    redemption_count = models.PositiveIntegerField(_("redemptions"))
    # Services of the month in this tier and item voided while the month was open (not paid).
    void_count = models.PositiveIntegerField(_("voided in the month"), default=0)
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=2)
    amount = money_field(_("amount"))
    government_share = money_field(_("government share"))
    senior_share = money_field(_("senior co-pay"))

    class Meta:
        ordering = ["statement", "kind", "tier_code", "service_item__code"]
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "kind", "tier_code", "service_item"], name="statement_line_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount=Round(F("government_share") + F("senior_share"), 2)),
                name="statement_line_shares_add_up",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["service", "adjustment"]), name="statement_line_kind"
            ),
        ]


class Adjustment(models.Model):
    """A correction of a redemption whose month is closed (调整), landing in `month`, an open
    month, as part of the provider's statement there (§6.3). Signed: a void is the negative of
    the redemption. Never updated: a wrong adjustment is corrected by another."""

    class Kind(models.TextChoices):
        VOID = "void", _("Void after settlement")
        CORRECTION = "correction", _("Correction")
        FINDING = "finding", _("Integrity finding")

    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    redemption = models.ForeignKey(
        "vouchers.Redemption",
        on_delete=models.PROTECT,
        related_name="adjustments",
        verbose_name=_("redemption"),
    )
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="adjustments")
    # The open month whose statement carries it (first day).
    month = models.DateField(_("settled in month"))
    tier_code = models.SlugField(_("tier"), max_length=30)
    service_item = models.ForeignKey("providers.ServiceItem", on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=2, default=0)
    amount = money_field(_("amount"))
    government_share = money_field(_("government share"))
    senior_share = money_field(_("senior co-pay"))
    reason = models.CharField(_("reason"), max_length=200)
    created_at = models.DateTimeField(_("recorded at"))
    created_by = _user(_("recorded by"))
    created_by_job = models.CharField(_("recorded by (job)"), max_length=60, blank=True)

    class Meta:
        ordering = ["month", "provider", "id"]
        verbose_name = _("adjustment")
        verbose_name_plural = _("adjustments")
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["void", "correction", "finding"]), name="adjustment_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(amount=Round(F("government_share") + F("senior_share"), 2)),
                name="adjustment_shares_add_up",
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="adjustment_has_reason"),
            models.CheckConstraint(
                condition=_one_actor("created_by", "created_by_job", "created_at"), name="adjustment_by_one"
            ),
            # A redemption is voided once: its void after settlement is one adjustment.
            models.UniqueConstraint(
                fields=["redemption"], condition=Q(kind="void"), name="adjustment_one_void_per_redemption"
            ),
        ]
        indexes = [models.Index(fields=["month", "provider"], name="adjustment_month_provider")]

    def __str__(self):
        return f"{self.kind} #{self.redemption_id} → {self.month:%Y-%m}"


class ReconciliationCheck(models.Model):
    """One reconciliation check of one settlement of a month, kept for the pages: its outcome,
    how many rows failed it, and the ids of the first of them (redemptions, vouchers, statements
    or tier codes, as `CHECKS` in billing.selectors says)."""

    class Status(models.TextChoices):
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")

    period = models.ForeignKey(SettlementPeriod, on_delete=models.CASCADE, related_name="checks")
    code = models.SlugField(_("check"), max_length=40)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    failing_count = models.PositiveIntegerField(_("failing rows"), default=0)
    sample = models.JSONField(_("first failing rows"), default=list, blank=True)
    checked_at = models.DateTimeField(_("checked at"))

    class Meta:
        ordering = ["period", "code"]
        verbose_name = _("reconciliation check")
        verbose_name_plural = _("reconciliation checks")
        constraints = [
            models.UniqueConstraint(fields=["period", "code"], name="reconciliation_check_one_per_period"),
            models.CheckConstraint(
                condition=Q(status__in=["passed", "failed"]), name="reconciliation_status"
            ),
            models.CheckConstraint(
                condition=Q(status="passed", failing_count=0) | Q(status="failed", failing_count__gt=0),
                name="reconciliation_status_matches_count",
            ),
        ]

    def __str__(self):
        return f"{self.period} {self.code} {self.status}"


class SettlementExport(models.Model):
    """One workbook of a settled month (all providers, or one), asked for from the pages.

    A small month is written at once, in the request; a large one by a Celery worker
    (`tasks.run_settlement_export`), whose progress the page follows. The file goes to the
    `exports` storage (settings.STORAGES, `EXPORT_ROOT`), never into the database; the row keeps
    its name, size and the figures it was written with, and who asked for it.
    """

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Being written")
        DONE = "done", _("Ready")
        FAILED = "failed", _("Failed")

    month = models.DateField(_("month"))
    provider = models.ForeignKey(
        "providers.Provider",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("provider"),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    rows_total = models.PositiveIntegerField(_("services in the detail"), default=0)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(_("file size (bytes)"), default=0)
    # {"statements": n, "redemptions": n, "detail_rows": n, "total_amount": "…", …} when done;
    # {"code": "…"} when failed.
    outcome = models.JSONField(_("outcome"), default=dict, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("settlement workbook")
        verbose_name_plural = _("settlement workbooks")
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "done", "failed"]), name="settlement_export_state"
            ),
            models.CheckConstraint(
                condition=Q(state="done", finished_at__isnull=False) & ~Q(file_name="")
                | Q(state="failed", finished_at__isnull=False, file_name="")
                | Q(state__in=["queued", "running"], finished_at__isnull=True, file_name=""),
                name="settlement_export_state_fields",
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m} {self.provider or '*'} {self.state}"

    @property
    def download_name(self) -> str:
        suffix = f"-{self.provider.code}" if self.provider_id else ""
        return f"settlement-{self.month:%Y-%m}{suffix}.xlsx"
