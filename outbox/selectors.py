"""Reads of the outbox: whether a job's task is still waiting for the broker."""

from outbox.models import OutboxTask


def waiting_for_broker(*, task: str, args: list) -> bool:
    """True when `task(*args)` was asked for, tried, and not yet sent: the broker (Redis) was down.
    A page that started the job says so."""
    return any(
        row.args == list(args)
        for row in OutboxTask.objects.filter(task=task, sent_at__isnull=True, attempts__gt=0).only("args")
    )
