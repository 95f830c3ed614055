"""Rule 1 of DESIGN.md §6 under real concurrency, on PostgreSQL's row locks.

SQLite serialises all writers, so these tests would prove nothing there; they are skipped.
"""

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from tests.vouchers.conftest import NOW, build_world
from vouchers.models import Redemption, Voucher
from vouchers.services import redeem

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and parallel writers need PostgreSQL"
    ),
]
THREADS = 20


@pytest.fixture
def committed_world(transactional_db, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


def run_in_threads(work):
    """Run `work(i)` in THREADS threads released at once; each thread closes its connection."""
    barrier = threading.Barrier(THREADS)

    def runner(i):
        try:
            barrier.wait(timeout=10)
            return work(i)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(runner, range(THREADS)))


def test_twenty_scans_at_once_never_overdraw_the_balance(committed_world):
    # Given a subsidized voucher of ¥300 and 20 staff phones scanning ¥40 services at once
    voucher = committed_world.vouchers["subsidized"]
    token, staff = committed_world.token("subsidized"), committed_world.staff

    # When all of them redeem at the same moment
    results = run_in_threads(
        lambda i: redeem(
            token=token,
            service_item_code="cleaning",
            quantity=Decimal("1"),
            idempotency_key=f"parallel-{i:04d}",
            staff=staff,
        )
    )

    # Then every scan is recorded, the balance is exactly spent and never negative
    assert len({result.redemption.pk for result in results}) == THREADS
    final = Voucher.objects.get(pk=voucher.pk).balance.amount
    shares = Redemption.objects.filter(voucher=voucher).aggregate(
        gov=Sum("government_share"), total=Sum("amount")
    )
    assert final == Decimal("0.00")
    assert shares["gov"] == Decimal("300.00") == voucher.face_value.amount - final
    assert shares["total"] == Decimal("800.00")
    # the one scan that found only ¥20 left split it: ¥20 from the voucher, ¥20 from the senior
    assert Redemption.objects.filter(voucher=voucher, government_share=Decimal("20.00")).count() == 1


def test_one_idempotency_key_sent_twenty_times_at_once_records_one_redemption(committed_world):
    token, staff = committed_world.token("low_fee"), committed_world.staff

    results = run_in_threads(
        lambda i: redeem(
            token=token,
            service_item_code="cleaning",
            quantity=Decimal("1.5"),
            idempotency_key="same-key-0001",
            staff=staff,
        )
    )

    assert len({result.redemption.pk for result in results}) == 1
    assert sum(not result.replayed for result in results) == 1
    assert Redemption.objects.count() == 1
    assert Voucher.objects.get(pk=committed_world.vouchers["low_fee"].pk).balance.amount == Decimal("158.00")


def test_the_ledger_is_append_only_in_the_database(committed_world):
    from django.db import IntegrityError, transaction

    result = redeem(
        token=committed_world.token("low_fee"),
        service_item_code="cleaning",
        quantity=Decimal("1"),
        idempotency_key="append-only-1",
        staff=committed_world.staff,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Redemption.objects.filter(pk=result.redemption.pk).update(quantity=Decimal("9"))
    with pytest.raises(IntegrityError), transaction.atomic():
        Redemption.objects.filter(pk=result.redemption.pk).delete()
    assert Redemption.objects.get(pk=result.redemption.pk).quantity == Decimal("1")


def test_settling_a_month_holds_back_its_writers_but_not_the_current_months(transactional_db):
    from django.db import OperationalError, connections, transaction

    from vouchers.month_locks import freeze_month_for_settlement, hold_month_for_write

    october, november = dt.date(2026, 10, 1), dt.date(2026, 11, 1)
    frozen, release = threading.Event(), threading.Event()

    def settlement():
        try:
            with transaction.atomic():
                freeze_month_for_settlement(october)
                frozen.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=settlement)
    thread.start()
    try:
        assert frozen.wait(timeout=10)
        with transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            hold_month_for_write(november)  # the current month's scans go on
        with pytest.raises(OperationalError), transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            hold_month_for_write(october)  # the settled month's writers wait
    finally:
        release.set()
        thread.join(timeout=10)
