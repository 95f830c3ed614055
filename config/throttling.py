"""Rate limits that count exactly: one atomic increment per request in a fixed window.

DRF's own throttles read a list of timestamps, append and write it back, so concurrent requests
each see the old list and more get through than the rate says (about 140 of "120/min"). Here
each request is one `cache.incr` (Redis INCR, or the local-memory cache's lock): within a window
no more than the rate pass, whatever the concurrency. A cache that fails (Redis down or hung)
fails open within its sub-second socket timeout, with a warning in the log once per interval
(`config.resilience`): Redis is a helper, never a reason to stop scanning.
"""

import time

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from config.resilience import cache_call

# INCR, and on a window's first request EXPIRE: one command, atomic, in one round trip.
_INCR_WITH_TTL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


def _redis_counter(backend: RedisCache):
    """The cache's counting script, bound to its Redis client for writes, made once per cache
    object (one per thread): Django makes a new client, copying its response callbacks, for
    every call."""
    counter = getattr(backend, "_throttle_counter", None)
    if counter is None:
        counter = backend._cache.get_client(write=True).register_script(_INCR_WITH_TTL)
        backend._throttle_counter = counter
    return counter


def _count(key: str, ttl: int) -> int:
    """This request's number in `key`'s window: on Redis one script (EVALSHA); on another cache
    add-then-incr."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        return _redis_counter(backend)(keys=[backend.make_and_validate_key(key)], args=[ttl])
    cache.add(key, 0, ttl)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, ttl)
        return 1


class ExactRateMixin:
    _wait: float | None = None

    def within_rate(self, key: str) -> bool:
        now = time.time()
        window = int(now // self.duration)
        self._wait = self.duration - (now % self.duration)
        window_key = f"{key}:{window}"
        # Any cache failure lets the request through (count 0).
        count = cache_call(
            f"rate limit {self.scope}", lambda: _count(window_key, self.duration + 1), default=0
        )
        return count <= self.num_requests

    def wait(self):
        return self._wait


class ExactRateThrottle(ExactRateMixin, SimpleRateThrottle):
    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        return True if key is None else self.within_rate(key)


class ExactScopedRateThrottle(ExactRateMixin, ScopedRateThrottle):
    """`ScopedRateThrottle` (per user, the view's `throttle_scope`), counted exactly."""

    def scope_for(self, request, view) -> str | None:
        return getattr(view, self.scope_attr, None)

    def allow_request(self, request, view):
        self.scope = self.scope_for(request, view)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        return True if key is None else self.within_rate(key)


class ScanRateThrottle(ExactScopedRateThrottle):
    """Scans; a service scanned offline and sent later (it carries `scanned_at`) counts against
    the larger `scan_replay` budget, so a phone's queue is never refused when it comes back online."""

    def scope_for(self, request, view) -> str | None:
        scope = super().scope_for(request, view)
        if scope == "scan" and request.method == "POST":
            data = request.data
            if isinstance(data, dict) and data.get("scanned_at"):
                return "scan_replay"
        return scope
