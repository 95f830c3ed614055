"""The lock that keeps a month's ledger still while it is settled, and only that month's.

Writers of a month (redeem, void) take a shared transaction-level advisory lock on it; the
settlement takes the exclusive one. Writers never wait for each other, a settlement waits for the
month's writes in flight and holds back new ones until it commits (after which they see the
ClosedMonth row and refuse `period_closed`), and scans of the current month go on untouched while
last month is settled. SQLite needs nothing: it has one writer at a time.
"""

import datetime as dt

from django.db import connection

NAMESPACE = 7301  # the first key of pg_advisory_xact_lock(int, int): "redemption ledger month"


def _key(month: dt.date) -> int:
    return month.year * 100 + month.month


def hold_month_for_write(month: dt.date) -> None:
    """Call before checking that `month` is open, in the transaction that writes to it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [NAMESPACE, _key(month)])


def freeze_month_for_settlement(month: dt.date) -> None:
    """Wait for `month`'s writes in flight and keep new ones out until this transaction ends."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [NAMESPACE, _key(month)])
