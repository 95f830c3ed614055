"""A Celery task to send, kept in the database in the transaction that asked for it.

Redis (the broker) is a helper: when it is down the task waits here, and is sent when it returns
(`services.send_pending`, on Celery beat every minute). Nothing asked for is lost.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class OutboxTask(models.Model):
    task = models.CharField(_("task"), max_length=200)
    args = models.JSONField(_("arguments"), default=list)
    created_at = models.DateTimeField(_("asked for at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # A sender holds the row until then, so the commit's sender and the sweep do not both send it.
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.CharField(_("last error"), max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("queued task")
        verbose_name_plural = _("queued tasks")
        indexes = [
            models.Index(fields=["id"], condition=models.Q(sent_at__isnull=True), name="outbox_unsent"),
        ]

    def __str__(self):
        return f"{self.task}{tuple(self.args)}"
