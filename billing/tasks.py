"""Celery tasks of the billing app: thin wrappers over the settlement service."""

from celery import shared_task
from django.utils import timezone

from billing.models import SettlementPeriod
from billing.services import finish_export, settle
from config.months import format_month, month_of, parse_month, previous_month

SETTLE_MONTH_JOB = "celery:settle_month"


@shared_task
def settle_month(month: str) -> dict:
    """Settle `month` ("YYYY-MM") as the job `celery:settle_month`; returns a JSON-able summary.
    Domain refusals propagate."""
    result = settle(month=parse_month(month), job=SETTLE_MONTH_JOB)
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
    """Close and draft the month that ended last (Asia/Shanghai). A month already settled is left
    alone (a settlement again is finance's decision: it sends the statements back to draft), so a
    repeated or late run of the schedule is harmless."""
    month = previous_month(month_of(timezone.now()))
    if SettlementPeriod.objects.filter(month=month).exclude(state=SettlementPeriod.State.OPEN).exists():
        return {"month": format_month(month), "skipped": "period_closed"}
    return settle_month(format_month(month))


@shared_task
def run_settlement_export(export_id: int) -> str:
    """Write a workbook finance asked for from the pages; returns its final state."""
    return finish_export(export_id=export_id).state
