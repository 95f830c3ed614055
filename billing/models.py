"""Settlement periods, statements (结算单) and their lines.

A statement's totals equal the sum of its lines, which equal the sum of its redemptions (§6.4);
the database checks that each row's shares add up, the settlement service checks the rest.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Round
from django.utils.translation import gettext_lazy as _
from djmoney.models.fields import MoneyField


def money_field(verbose_name):
    return MoneyField(verbose_name, max_digits=14, decimal_places=2, default_currency="CNY")


class SettlementPeriod(models.Model):
    """One calendar month (Asia/Shanghai). Once settled, its redemptions and statements are frozen."""

    class State(models.TextChoices):
        OPEN = "open", _("Open")
        SETTLED = "settled", _("Settled")

    month = models.DateField(_("month"), unique=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.OPEN)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-month"]
        verbose_name = _("settlement period")
        verbose_name_plural = _("settlement periods")
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["open", "settled"]), name="period_state_valid"),
            models.CheckConstraint(
                condition=Q(state="open") | Q(settled_at__isnull=False), name="period_settled_has_time"
            ),
        ]

    def __str__(self):
        return f"{self.month:%Y-%m}"


class Statement(models.Model):
    """One provider's settlement for one month."""

    period = models.ForeignKey(SettlementPeriod, on_delete=models.PROTECT, related_name="statements")
    provider = models.ForeignKey("providers.Provider", on_delete=models.PROTECT, related_name="statements")
    redemption_count = models.PositiveIntegerField(_("redemptions"))
    total_amount = money_field(_("total amount"))
    government_total = money_field(_("government share"))
    senior_total = money_field(_("senior co-pay"))
    created_at = models.DateTimeField(auto_now_add=True)

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
        ]

    def __str__(self):
        return f"{self.period} {self.provider}"


class StatementLine(models.Model):
    """The totals of one tier and one service item within a statement."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    tier_code = models.SlugField(_("tier"), max_length=30)
    service_item = models.ForeignKey("providers.ServiceItem", on_delete=models.PROTECT, related_name="+")
    redemption_count = models.PositiveIntegerField(_("redemptions"))
    quantity = models.DecimalField(_("quantity"), max_digits=12, decimal_places=2)
    amount = money_field(_("amount"))
    government_share = money_field(_("government share"))
    senior_share = money_field(_("senior co-pay"))

    class Meta:
        ordering = ["statement", "tier_code", "service_item__code"]
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "tier_code", "service_item"], name="statement_line_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount=Round(F("government_share") + F("senior_share"), 2)),
                name="statement_line_shares_add_up",
            ),
        ]
