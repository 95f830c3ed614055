"""Redis stopped or frozen (DESIGN.md §8): scans, sign-in and pages keep working. The test's own
Redis (tests/faults/conftest.py) carries the cache; the shared one is never touched."""

import logging
import time

from rest_framework.test import APIClient

from tests.vouchers.conftest import REDEEM, scan_and_confirm
from vouchers.models import Redemption

BURST = 60


def scan(world, n: int, *, tier: str = "low_fee"):
    """One service scanned as the scanner does; returns (status, seconds)."""
    started = time.monotonic()
    response = scan_and_confirm(
        world.client(),
        {
            "token": world.token(tier),
            "service_item": "meal",
            "quantity": "1",
            "idempotency_key": f"burst-{n:04d}",
        },
        url=REDEEM,
    )
    return response.status_code, time.monotonic() - started


def test_a_burst_of_scans_survives_redis_stopping_in_the_middle(world, cache_on_own_redis, caplog):
    # given scans counted against their rate limit in the test's own Redis
    answers = [scan(world, n) for n in range(BURST // 3)]
    assert cache_on_own_redis.keys() > 0, "the rate limits did not use Redis: the test would prove nothing"

    # when Redis dies in the middle of the burst
    cache_on_own_redis.stop()
    with caplog.at_level(logging.WARNING, logger="config.resilience"):
        answers += [scan(world, n) for n in range(BURST // 3, BURST)]

    # then every scan is recorded, none answers 5xx, and the log says so once, not once a scan
    statuses = [status for status, _ in answers]
    assert statuses == [201] * BURST
    assert Redemption.objects.filter(idempotency_key__startswith="burst-").count() == BURST
    warnings = [r for r in caplog.records if r.name == "config.resilience"]
    assert len(warnings) == 1
    assert "rate limit scan" in warnings[0].getMessage()
    print(
        f"\nRedis stopped: {BURST} scans, {BURST} answered 201, 0 5xx, longest {max(s for _, s in answers):.3f} s"
    )


def test_with_redis_frozen_every_request_answers_within_two_seconds(world, cache_on_own_redis):
    # given a Redis that accepts connections but never answers (SIGSTOP)
    scan(world, 0)
    cache_on_own_redis.freeze()

    # when scans, a device sign-in and a page are asked for
    answers = [scan(world, n) for n in range(1, 21)]
    started = time.monotonic()
    signed_in = APIClient().post(
        "/api/v1/auth/token/",
        {"username": world.staff.user.username, "password": "pw-for-tests-1"},
        format="json",
    )
    answers.append((signed_in.status_code, time.monotonic() - started))
    started = time.monotonic()
    login_page = APIClient().get("/login/")
    answers.append((login_page.status_code, time.monotonic() - started))

    # then each answers, successfully, well within 2 s
    assert [status for status, _ in answers] == [201] * 20 + [201, 200]
    longest = max(seconds for _, seconds in answers)
    assert longest < 2
    print(f"\nRedis frozen: {len(answers)} requests, all answered, 0 5xx, longest {longest:.3f} s")


def test_the_cache_is_used_again_once_redis_is_back(world, cache_on_own_redis, settings):
    # given a Redis that failed once (the breaker rests the cache for a moment)
    settings.REDIS_RETRY_SECONDS = 0.2
    scan(world, 0)
    cache_on_own_redis.freeze()
    assert scan(world, 1)[0] == 201

    # when it answers again and the rest is over
    cache_on_own_redis.thaw()
    time.sleep(0.3)
    from django.core.cache import cache

    cache.clear()
    assert scan(world, 2)[0] == 201

    # then the rate limit counts in Redis again
    assert cache_on_own_redis.keys() > 0
