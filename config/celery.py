"""The Celery app. Tasks are thin wrappers over services; the schedule runs the month."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("homecare")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # Re-evaluate everyone on the last day of the month (the task checks that it is the last day,
    # since cron cannot say "last day"), so that next month's vouchers use fresh determinations.
    "evaluate-eligibility-month-end": {
        "task": "eligibility.tasks.evaluate_eligibility_at_month_end",
        "schedule": crontab(minute=0, hour=22, day_of_month="28-31"),
    },
    # Issue the new month's vouchers (and expire last month's) early on the 1st.
    "issue-vouchers-first-of-month": {
        "task": "vouchers.tasks.issue_vouchers_for_current_month",
        "schedule": crontab(minute=30, hour=0, day_of_month="1"),
    },
    # Tasks asked for while the broker was down wait in the database; send them once it is back.
    "send-pending-tasks": {
        "task": "outbox.tasks.send_pending_tasks",
        "schedule": crontab(minute="*"),
    },
    # A check-in never checked out closes as an exception for review once its maximum is past.
    "close-overdue-visits": {
        "task": "vouchers.tasks.close_overdue_visits",
        "schedule": crontab(minute="*/10"),
    },
}
