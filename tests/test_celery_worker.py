"""Celery for real: a settlement task travels through Redis to a worker process and back.

The worker is a separate process started by the test, so the data it settles must be committed
(`transactional_db`) in a database both processes can reach: PostgreSQL, not SQLite.
"""

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from urllib.parse import quote

import pytest
from celery.result import EagerResult
from django.conf import settings
from django.db import connection
from djmoney.money import Money

from billing.models import Statement
from config.celery import app as celery_app
from eligibility.services import ensure_default_policy, evaluate_eligibility, register_senior
from tests.factories import (
    StaffMemberFactory,
    make_community,
    make_id_card_number,
    make_priced_contract,
)
from vouchers.models import Voucher
from vouchers.services import issue_vouchers, redeem
from vouchers.tokens import voucher_token

pytestmark = [pytest.mark.postgres, pytest.mark.celery_worker]

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MONTH = dt.date(2025, 6, 1)  # a month long past, so it may be settled
SERVED_AT = dt.datetime(2025, 6, 16, 10, 0, tzinfo=SHANGHAI)
WORKER_TIMEOUT = 90


@pytest.fixture
def needs_postgres_and_redis():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker is another process and must see the committed test data")
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL: the task goes through a real Redis broker")


def _database_url() -> str:
    """The URL of the test database this process is using, for the worker process."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    credentials = f"{user}{password}@" if user else ""
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{db['NAME']}"


def _month_with_two_redemptions():
    """A subsidized and a low-fee senior each served once in MONTH by one provider."""
    ensure_default_policy()
    community = make_community("CW")
    subsidized = register_senior(
        id_card_number=make_id_card_number(birth_date=dt.date(1940, 5, 1)),
        name="张秀兰",
        community=community,
        three_no=True,
    )
    low_fee = register_senior(
        id_card_number=make_id_card_number(birth_date=dt.date(1950, 5, 1)),
        name="李建国",
        community=community,
        living_arrangement="empty_nest",
        children_in_city=False,
        self_care="disabled",
    )
    evaluate_eligibility(as_of=MONTH)
    issue_vouchers(period=MONTH, now=dt.datetime(2025, 6, 1, 0, 30, tzinfo=SHANGHAI))
    contract = make_priced_contract(area=[community.parent])
    staff = StaffMemberFactory(provider=contract.provider)
    for senior, item, quantity, key in (
        (subsidized, "cleaning", Decimal("2"), "celery-test-0001"),
        (low_fee, "meal", Decimal("1"), "celery-test-0002"),
    ):
        redeem(
            token=voucher_token(Voucher.objects.get(senior=senior, period=MONTH)),
            service_item_code=item,
            quantity=quantity,
            idempotency_key=key,
            staff=staff,
            now=SERVED_AT,
        )
    return contract.provider


def _start_worker(queue: str, log_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": os.environ["REDIS_URL"],
        "CELERY_QUEUE": queue,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "-l",
        "warning",
    ]
    log = open(log_path, "w")  # noqa: SIM115 - closed by the caller after the worker exits
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    return process, log


def _stop(process) -> None:
    if process.poll() is None:
        process.terminate()  # warm shutdown: finishes the current task, closes connections
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _run_on_a_worker(task, args, tmp_path, monkeypatch):
    """Send `task` through Redis to a worker on a queue of its own; its outcome."""
    monkeypatch.setattr(celery_app.conf, "task_always_eager", False)
    queue = f"test-{task.name.rsplit('.', 1)[-1]}-{uuid.uuid4().hex[:12]}"
    log_path = tmp_path / "worker.log"
    worker, log = _start_worker(queue, log_path)
    succeeded = False
    try:
        result = task.apply_async(args=args, queue=queue)
        assert not isinstance(result, EagerResult)
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not result.ready():
            assert worker.poll() is None, "the Celery worker exited before running the task"
            assert time.monotonic() < deadline, f"no result from the worker within {WORKER_TIMEOUT} s"
            time.sleep(0.2)
        outcome = result.get(timeout=5)
        succeeded = True
    finally:
        _stop(worker)
        log.close()
        if not succeeded:
            print("---- Celery worker output ----\n" + log_path.read_text(errors="replace"))
    return outcome


def test_a_settlement_task_runs_on_a_real_worker_through_redis(
    needs_postgres_and_redis, transactional_db, tmp_path, monkeypatch
):
    from billing.tasks import settle_month

    # given a past month with two committed redemptions
    provider = _month_with_two_redemptions()
    assert not Statement.objects.exists()

    # when the settlement is sent through Redis to a worker
    outcome = _run_on_a_worker(settle_month, [f"{MONTH:%Y-%m}"], tmp_path, monkeypatch)

    # then the worker wrote the provider's statement, with totals to the fen
    assert isinstance(outcome, dict)
    statement = Statement.objects.get(period__month=MONTH, provider=provider)
    assert statement.redemption_count == 2
    assert statement.total_amount == Money("95.00", "CNY")  # 2 h × 40.00 + 1 meal × 15.00
    assert statement.government_total == Money("90.50", "CNY")  # 80.00 + 70% of 15.00
    assert statement.senior_total == Money("4.50", "CNY")
    assert statement.lines.count() == 2


def test_an_evaluation_run_from_the_bureau_runs_on_a_real_worker(
    needs_postgres_and_redis, transactional_db, tmp_path, monkeypatch
):
    from eligibility.models import Determination, EvaluationRun
    from eligibility.selectors import evaluation_progress
    from eligibility.services import EVALUATION_STEPS
    from eligibility.tasks import run_evaluation

    # given two registered seniors whose determinations were lost, and a queued run
    _month_with_two_redemptions()
    Determination.objects.filter(is_current=True).update(is_current=False)
    run = EvaluationRun.objects.create(as_of=MONTH, job="test")

    # when a worker takes the run through Redis
    outcome = _run_on_a_worker(run_evaluation, [run.pk], tmp_path, monkeypatch)

    # then it evaluated both, recorded what it did, and the progress bar is full
    run.refresh_from_db()
    assert (outcome, run.state, run.evaluated, run.changed) == ("done", "done", 2, 2)
    assert run.policy is not None and run.finished_at is not None
    assert evaluation_progress(run=run) == (EVALUATION_STEPS, EVALUATION_STEPS)
    assert set(Determination.objects.filter(is_current=True).values_list("determined_by_job", flat=True)) == {
        "test"
    }


def test_a_settlement_workbook_is_written_by_a_real_worker(
    needs_postgres_and_redis, transactional_db, tmp_path, monkeypatch
):
    from billing.models import SettlementExport
    from billing.selectors import export_progress
    from billing.services import exports_storage, settle
    from billing.tasks import run_settlement_export
    from tests.factories import UserFactory

    # given a settled past month and a workbook of it asked for (queued for a worker)
    _month_with_two_redemptions()
    settle(month=MONTH, job="test")
    export = SettlementExport.objects.create(month=MONTH, requested_by=UserFactory(), rows_total=2)

    # when a worker takes it through Redis
    outcome = _run_on_a_worker(run_settlement_export, [export.pk], tmp_path, monkeypatch)

    # then the file is in the storage this process reads too, with the month's figures
    export.refresh_from_db()
    assert (outcome, export.state) == ("done", "done")
    assert export.outcome["redemptions"] == 2 and export.outcome["total_amount"] == "95.00"
    assert export_progress(export=export) == (2, 2)
    with exports_storage().open(export.file_name, "rb") as handle:
        assert handle.read(2) == b"PK" and export.file_size > 0
