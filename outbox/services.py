"""Sending Celery tasks through the database (the transactional outbox).

`enqueue` writes the task in the caller's transaction and sends it once that commits; a broker
that is down or hung refuses within `REDIS_CONNECT_TIMEOUT`/`REDIS_TIMEOUT` (no retries inside the
request) and the task stays unsent, to be sent by `send_pending` when the broker is back. A task
may thus run twice in a rare crash (sent, then the process died before marking it): the tasks
sent this way check their job's state first.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.resilience import warn_once_per_interval
from outbox.models import OutboxTask

CLAIM_SECONDS = 60


def enqueue(task, *args) -> OutboxTask:
    """Keep `task(*args)` (a Celery task, JSON arguments) to be sent when the current transaction
    commits (at once outside one). Never raises for the broker: an unsent task waits here."""
    row = OutboxTask.objects.create(task=task.name, args=list(args))
    transaction.on_commit(lambda: send(task_id=row.pk))
    return row


def _publish(row: OutboxTask) -> None:
    from config.celery import app

    task = app.tasks[row.task]
    if app.conf.task_always_eager:  # no broker (make run): the task runs here, inline
        task.apply_async(args=row.args)
        return
    # Its own connection with sub-second timeouts and no retries: a request never waits for a
    # broker that is down or hung (Celery's defaults retry for several seconds).
    options = {
        "socket_timeout": settings.REDIS_TIMEOUT,
        "socket_connect_timeout": settings.REDIS_CONNECT_TIMEOUT,
        "max_retries": 0,
        "interval_start": 0,
    }
    with app.connection_for_write(
        connect_timeout=settings.REDIS_CONNECT_TIMEOUT, transport_options=options
    ) as conn:
        task.apply_async(args=row.args, connection=conn, retry=False, ignore_result=True)


def send(*, task_id: int) -> bool:
    """Send one unsent task now; True if it was sent. A task another sender holds, or already
    sent, is left alone (False). A broker failure is recorded on the row and logged once per
    interval; the row waits for `send_pending`."""
    now = timezone.now()
    claimed = (
        OutboxTask.objects.filter(pk=task_id, sent_at__isnull=True)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
    )
    if not claimed:
        return False
    row = OutboxTask.objects.get(pk=task_id)
    from config.celery import app

    if app.conf.task_always_eager:
        # Marked first: an inline task that fails has failed, it was not left unsent.
        OutboxTask.objects.filter(pk=row.pk).update(sent_at=timezone.now(), attempts=F("attempts") + 1)
        _publish(row)
        return True
    try:
        _publish(row)
    except Exception as error:  # the broker is down or hung: the task waits in the outbox
        OutboxTask.objects.filter(pk=row.pk).update(
            claimed_until=None,
            attempts=F("attempts") + 1,
            last_error=f"{error.__class__.__name__}: {error}"[:300],
        )
        warn_once_per_interval(
            "outbox",
            "task %s not sent, the broker failed (%s); it waits in the outbox",
            row.task,
            error.__class__.__name__,
        )
        return False
    OutboxTask.objects.filter(pk=row.pk).update(
        sent_at=timezone.now(), claimed_until=None, attempts=F("attempts") + 1
    )
    return True


def send_pending(*, limit: int = 500) -> int:
    """Send the tasks still waiting, oldest first; stops at the first the broker refuses (it is
    still down). Returns how many were sent. Celery beat runs it every minute (`tasks`)."""
    sent = 0
    pending = OutboxTask.objects.filter(sent_at__isnull=True).values_list("pk", flat=True)[:limit]
    for task_id in list(pending):
        if send(task_id=task_id):
            sent += 1
        elif OutboxTask.objects.filter(pk=task_id, sent_at__isnull=True, claimed_until__isnull=True).exists():
            break  # refused by the broker, not taken by another sender
    return sent
