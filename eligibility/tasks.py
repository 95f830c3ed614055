"""Celery tasks of the eligibility app: thin wrappers over the services."""

import datetime as dt

from celery import shared_task
from django.utils import timezone

from config.months import local_date
from eligibility.services import evaluate_eligibility, finish_evaluation, finish_import_job

MONTH_END_JOB = "eligibility.tasks.evaluate_eligibility_at_month_end"


@shared_task
def evaluate_eligibility_as_of(as_of: str, job: str = "eligibility.tasks.evaluate_eligibility_as_of") -> dict:
    result = evaluate_eligibility(as_of=dt.date.fromisoformat(as_of), job=job)
    return {
        "as_of": as_of,
        "evaluated": result.evaluated,
        "changed": result.changed,
        "retired": result.retired,
    }


@shared_task
def evaluate_eligibility_at_month_end() -> dict | None:
    """Runs on days 28–31; does the work only on the month's last day, as of the 1st of the next
    (before issuance on the 1st), recorded as this job's."""
    today = local_date(timezone.now())
    tomorrow = today + dt.timedelta(days=1)
    if tomorrow.day != 1:
        return None
    return evaluate_eligibility_as_of(tomorrow.isoformat(), job=MONTH_END_JOB)


@shared_task
def run_evaluation(run_id: int) -> str:
    """An evaluation the bureau started from the policies page; returns the run's final state."""
    return finish_evaluation(run_id=run_id).state


@shared_task
def run_import_job(job_id: int) -> str:
    """A large registry import (services.start_import queues it); returns the job's final state."""
    return finish_import_job(job_id=job_id).state
