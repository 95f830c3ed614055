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


def test_thirty_two_phones_fifty_scans_each_over_ten_vouchers(committed_world):
    """32 threads × 50 redemptions over 10 vouchers, with keys that repeat (retries, and the same
    person's other phone) and that collide between two people's phones: no balance below zero,
    no key of a staff member recorded twice, every voucher's ledger equal to its debits."""
    import random

    from eligibility.services import evaluate_eligibility, register_senior
    from providers.services import register_device
    from tests.factories import StaffMemberFactory, make_id_card_number
    from tests.vouchers.conftest import MONTH
    from vouchers.errors import VoucherError
    from vouchers.services import issue_vouchers
    from vouchers.tokens import voucher_token

    world = committed_world
    for i in range(7):  # with the world's three in this community: ten
        register_senior(
            id_card_number=make_id_card_number(birth_date=dt.date(1941, 1, 1 + i)),
            name=f"孙{i}",
            community=world.community,
            three_no=True,
        )
    evaluate_eligibility(as_of=MONTH)
    issue_vouchers(period=MONTH, now=NOW)
    vouchers = list(
        Voucher.objects.filter(period=MONTH, senior__community=world.community).order_by("id")[:10]
    )
    assert len(vouchers) == 10
    tokens = [voucher_token(v) for v in vouchers]
    second_staff = StaffMemberFactory(provider=world.contract.provider)
    devices = [world.device] + [
        register_device(user=staff.user, name=f"phone {n}")[0]
        for n, staff in enumerate([world.staff, second_staff, second_staff])
    ]
    threads, per_thread = 32, 50
    outcomes = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def phone(i):
        rng = random.Random(i)
        device = devices[i % len(devices)]
        try:
            barrier.wait(timeout=30)
            for n in range(per_thread):
                # Every fifth scan retries an earlier key of this thread; keys of thread i and
                # i+4 (other devices) collide on purpose.
                key = f"k-{i % 16:02d}-{rng.randrange(n) if n and n % 5 == 0 else n:03d}"
                voucher = rng.randrange(10)
                try:
                    result = redeem(
                        token=tokens[voucher],
                        service_item_code="meal",
                        quantity=Decimal("1"),
                        idempotency_key=f"{key}-{voucher}",
                        staff=device.staff,
                        device=device,
                        from_scanner=True,
                    )
                    outcome = ("replayed" if result.replayed else "ok", device.pk, f"{key}-{voucher}")
                except VoucherError as error:
                    outcome = (error.code, device.pk, f"{key}-{voucher}")
                with lock:
                    outcomes.append(outcome)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(phone, range(threads)))

    assert len(outcomes) == threads * per_thread
    codes = {code for code, *_ in outcomes}
    # records, retries answered from the first record, and (balances spent, or a tier's share)
    # scans that wait for the senior to agree
    assert codes == {"ok", "replayed", "confirmation_required"}, codes
    recorded = Redemption.objects.filter(voucher__in=vouchers)
    assert recorded.count() == sum(code == "ok" for code, *_ in outcomes)
    pairs = list(recorded.values_list("staff_id", "idempotency_key"))
    assert len(pairs) == len(set(pairs))
    for voucher in vouchers:
        voucher.refresh_from_db()
        debited = recorded.filter(voucher=voucher).aggregate(gov=Sum("government_share"))["gov"] or Decimal(
            "0"
        )
        assert voucher.balance.amount >= 0
        assert voucher.face_value.amount - voucher.balance.amount == debited
