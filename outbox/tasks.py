"""Celery task of the outbox: send what waited while the broker was down."""

from celery import shared_task

from outbox.services import send_pending


@shared_task
def send_pending_tasks() -> int:
    return send_pending()
