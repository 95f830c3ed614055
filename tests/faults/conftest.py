"""Fault tests: real servers, not mocks. Each test starts its own Redis on a free port (never the
shared one) and stops or freezes it; PostgreSQL faults kill only the test's own backend."""

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest

from tests.eligibility.conftest import bureau, default_policy  # noqa: F401 - a bureau user, the policy
from tests.vouchers.conftest import world  # noqa: F401 - the voucher tests' small world


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class OwnRedis:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def keys(self) -> int:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), "dbsize"], capture_output=True, text=True, timeout=5
        )
        return int(out.stdout.strip())

    def stop(self) -> None:
        """Kill it: connections are refused from now on."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: it still accepts connections (the kernel does) but never answers."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def own_redis():
    """A Redis of this test's own, on a free port, with nothing saved; stopped afterwards."""
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis = OwnRedis(port, process)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the test's own Redis did not start")
            time.sleep(0.05)
    yield redis
    # The Redis the test ended with (a test may have started a new one on the same port).
    if redis.process.poll() is None:
        redis.thaw()
        redis.stop()


@pytest.fixture
def cache_on_own_redis(own_redis, settings):
    """The shared cache (rate limits, counters) on the test's own Redis, with the timeouts of
    config.settings."""
    from django.conf import settings as django_settings
    from django.core.cache import cache

    options = {
        "socket_connect_timeout": django_settings.REDIS_CONNECT_TIMEOUT,
        "socket_timeout": django_settings.REDIS_TIMEOUT,
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": own_redis.url,
            "KEY_PREFIX": "faults",
            "OPTIONS": options,
        }
    }
    cache.clear()
    return own_redis
