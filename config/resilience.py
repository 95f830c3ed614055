"""Redis is a helper, never a single point of failure (DESIGN.md §8).

Every use of the shared cache that is not the cache's own business (rate limits, the dispute
counter, progress bars) goes through `cache_call`: a failed call answers its default instead of
raising, and opens a breaker for `REDIS_RETRY_SECONDS`, during which this process does not try the
cache at all. A hung Redis therefore costs one request one socket timeout (sub-second, settings),
not every request of every worker. The failure is logged once per `REDIS_LOG_INTERVAL_SECONDS`
per kind, with how many were skipped, so an outage does not flood the log.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

logger = logging.getLogger("config.resilience")

T = TypeVar("T")

_lock = threading.Lock()
_breaker_open_until = 0.0
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def warn_once_per_interval(kind: str, message: str, *args, exc_info=None) -> bool:
    """Log `message` as a warning unless `kind` was logged less than the interval ago; returns
    whether it was written. The next line says how many were left out meanwhile."""
    interval = getattr(settings, "REDIS_LOG_INTERVAL_SECONDS", 60)
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(kind)
        if last is not None and now - last < interval:
            _suppressed[kind] = _suppressed.get(kind, 0) + 1
            return False
        _last_logged[kind] = now
        skipped = _suppressed.pop(kind, 0)
    if skipped:
        message += " (%s more since the last report)"
        args = (*args, skipped)
    logger.warning(message, *args, exc_info=exc_info)
    return True


def cache_is_resting() -> bool:
    """True while the breaker is open: the cache failed a moment ago and is not tried."""
    return time.monotonic() < _breaker_open_until


def cache_call(what: str, call: Callable[[], T], *, default: T) -> T:
    """`call()` against the shared cache, or `default` when the cache fails or failed a moment
    ago. `what` names the use in the log ("rate limit scan")."""
    global _breaker_open_until
    if cache_is_resting():
        return default
    try:
        return call()
    except Exception as error:  # any cache failure: fail open
        with _lock:
            _breaker_open_until = time.monotonic() + getattr(settings, "REDIS_RETRY_SECONDS", 5)
        warn_once_per_interval(
            f"cache:{what}",
            "the cache failed (%s: %s); %s goes on without it for now",
            error.__class__.__name__,
            error,
            what,
        )
        return default


def reset() -> None:
    """Close the breaker and forget what was logged (tests)."""
    global _breaker_open_until
    with _lock:
        _breaker_open_until = 0.0
        _last_logged.clear()
        _suppressed.clear()
