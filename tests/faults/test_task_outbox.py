"""Celery tasks asked for while the broker (Redis) is down or hung are kept in the database and
sent when it is back; asking never makes a page wait (DESIGN.md §8). The broker is the test's
own Redis."""

import subprocess
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from eligibility import services
from eligibility.models import EvaluationRun
from outbox.models import OutboxTask
from outbox.services import send_pending

QUEUE = "homecare"


@pytest.fixture
def broker(own_redis, monkeypatch):
    """Celery sends to the test's own Redis instead of running tasks inline."""
    # The Django settings' names: the app reads its configuration with the CELERY_ namespace.
    monkeypatch.setattr(celery_app.conf, "CELERY_TASK_ALWAYS_EAGER", False)
    monkeypatch.setattr(celery_app.conf, "CELERY_BROKER_URL", own_redis.url)
    monkeypatch.setattr(celery_app.conf, "CELERY_TASK_DEFAULT_QUEUE", QUEUE)
    return own_redis


def waiting_in_broker(redis) -> int:
    out = subprocess.run(["redis-cli", "-p", str(redis.port), "llen", QUEUE], capture_output=True, text=True)
    return int(out.stdout.strip())


@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_a_task_asked_for_while_the_broker_fails_is_kept_and_sent_when_it_is_back(
    broker,
    fault,
    default_policy,
    django_capture_on_commit_callbacks,
):
    # given a broker that is down (nothing listens) or hung (SIGSTOP)
    if fault == "frozen":
        broker.freeze()
    else:
        broker.stop()

    # when an evaluation is started
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        run = services.start_evaluation(as_of=default_policy.effective_from, job="test")
    took = time.monotonic() - started

    # then the request did not wait for the broker, and the task waits in the outbox
    assert took < 2
    row = OutboxTask.objects.get()
    assert (row.task, row.args, row.sent_at, row.attempts) == (
        "eligibility.tasks.run_evaluation",
        [run.pk],
        None,
        1,
    )
    run.refresh_from_db()
    assert run.state == EvaluationRun.State.QUEUED

    # when the broker is back and the sweep runs
    if fault == "frozen":
        broker.thaw()
    else:
        restarted = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(broker.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        broker.process = restarted
        time.sleep(0.3)
    assert send_pending() == 1

    # then it was sent once, and the broker holds it for a worker
    row.refresh_from_db()
    assert row.sent_at is not None
    assert waiting_in_broker(broker) == 1
    assert send_pending() == 0
    print(f"\nbroker {fault}: asking took {took:.3f} s; sent when it was back")


def test_the_page_of_a_run_waiting_for_the_broker_says_so(client, bureau):
    # given a run whose task the broker refused
    run = EvaluationRun.objects.create(as_of=timezone.localdate(), started_by=bureau)
    OutboxTask.objects.create(task="eligibility.tasks.run_evaluation", args=[run.pk], attempts=1)

    # when the bureau looks at it
    client.force_login(bureau)
    page = client.get(reverse("policy-run", args=[run.pk])).content.decode()

    # then the page says the run waits for the task service and will start by itself

    assert 'id="waiting-for-task-service"' in page
    assert "任务服务" in page
