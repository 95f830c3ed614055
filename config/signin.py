"""One lockout for every sign-in: the web form, the admin's and a scanning device's
(`POST /api/v1/auth/token/`), per username and per address, kept by django-axes in the database
(not in Redis: it holds when the cache is down).

After `SIGN_IN_FAILURE_LIMIT` failures (default 10) for a username, or from an address, within
`SIGN_IN_LOCKOUT_MINUTES` (default 15), further tries are refused for that long, right password
or not. Axes counts through Django's `authenticate` and its `user_login_failed` signal; the sign-in
views say "locked" themselves, so `lockout_response` leaves their answer as it is.
"""

from django.conf import settings
from django.contrib.auth import user_logged_in, user_login_failed
from django.utils.translation import gettext_lazy as _
from rest_framework.throttling import BaseThrottle

LOCKED_MESSAGE = _(
    "Too many failed sign-ins for this username or from this address; try again in %(minutes)s minutes."
)


def client_address(request) -> str:
    """The address a lockout keys on: the same as the API's throttles (NUM_PROXIES: the client's
    address from X-Forwarded-For behind the TLS proxy, never one the client chose)."""
    return BaseThrottle().get_ident(request)


def username_of(request, credentials) -> str:
    """The username a lockout counts, case and spaces aside: "Bureau " is "bureau"."""
    return str((credentials or {}).get("username") or "").strip().lower()


def lockout_response(request, original_response, credentials):
    """Axes's hook for a locked-out request: the view has already answered it (a form error, a
    JSON `rate_limited`), so its answer stands."""
    return original_response


def is_locked_out(request) -> bool:
    """Whether the last `authenticate(request, ...)` was refused by the lockout (axes flags the
    request when a failure is at or over the limit)."""
    return bool(getattr(request, "axes_locked_out", False))


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def locked_message() -> str:
    return LOCKED_MESSAGE % {"minutes": lockout_seconds() // 60}


def count_failure(request, username: str) -> None:
    """Count a sign-in that authenticated but may not go on (not a scanning staff member) as a
    failure, exactly as a wrong password: the answer and the lockout cannot tell them apart."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def count_success(request, user) -> None:
    """A device signed in: like a web sign-in it clears the username's failures (and is kept in
    axes's access log), though no session is made."""
    user_logged_in.send(sender=user.__class__, request=request, user=user)
