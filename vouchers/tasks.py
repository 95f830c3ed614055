"""Celery tasks of the vouchers app: thin wrappers over the services."""

from celery import shared_task
from django.utils import timezone

from config.months import format_month, month_of, parse_month
from vouchers import services
from vouchers.services import issue_vouchers


@shared_task
def issue_vouchers_for_month(month: str) -> dict:
    result = issue_vouchers(period=parse_month(month), job="vouchers.tasks.issue_vouchers_for_month")
    return {"month": month, "issued": result.issued, "expired": result.expired}


@shared_task
def issue_vouchers_for_current_month() -> dict:
    return issue_vouchers_for_month(format_month(month_of(timezone.now())))


@shared_task
def close_overdue_visits() -> int:
    """Close the visits left open past their maximum as exceptions (nothing charged)."""
    return services.close_overdue_visits()
