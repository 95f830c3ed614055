"""Celery tasks of the billing app: thin wrappers over the settlement service."""

from celery import shared_task
from django.utils import timezone

from billing.errors import BillingError
from billing.services import settle
from config.months import format_month, month_of, parse_month, previous_month


@shared_task
def settle_month(month: str) -> dict:
    """Settle `month` ("YYYY-MM"); returns a JSON-able summary. Domain refusals propagate."""
    result = settle(month=parse_month(month))
    return {
        "month": month,
        "statements": len(result.statements),
        "redemptions": result.redemption_count,
        "total_amount": str(result.total_amount.amount),
        "government_total": str(result.government_total.amount),
        "senior_total": str(result.senior_total.amount),
    }


@shared_task
def settle_previous_month() -> dict:
    """Settle the month that ended last (Asia/Shanghai). A month already settled is left alone,
    so a repeated or late run of the schedule is harmless."""
    month = format_month(previous_month(month_of(timezone.now())))
    try:
        return settle_month(month)
    except BillingError as error:
        if error.code != "period_closed":
            raise
        return {"month": month, "skipped": error.code}
