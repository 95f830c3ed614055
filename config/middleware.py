"""Pages that say "not found" the same way in every mode, the Content-Security-Policy, and the
browser's middleware kept off the scanner's API requests."""

import logging
from functools import wraps

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.db import InterfaceError, OperationalError
from django.http import Http404
from django.middleware import csrf

# What `providers.authentication.DeviceTokenAuthentication` reads (its keywords, lower case).
_DEVICE_AUTH_PREFIXES = ("bearer ", "token ")


def is_device_api_request(request) -> bool:
    """An API request signed by a device token (a scanning phone): it is authenticated by that
    token alone (a wrong one is refused, never tried as a session), so the browser's session,
    CSRF, sign-in and messages have nothing to do for it."""
    return request.path_info.startswith("/api/") and (
        request.META.get("HTTP_AUTHORIZATION", "")[:7].lower().startswith(_DEVICE_AUTH_PREFIXES)
    )


class _BrowserOnly:
    """Runs the middleware it is mixed into for every request but a device's API request: those
    are each phone scan, and these layers cost a scan more than its statements do."""

    def __call__(self, request):
        if is_device_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_BrowserOnly, sessions_middleware.SessionMiddleware):
    pass


class CsrfViewMiddleware(_BrowserOnly, csrf.CsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        if is_device_api_request(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(_BrowserOnly, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, messages_middleware.MessageMiddleware):
    pass


# Nothing inline, nothing from elsewhere (DESIGN.md §6.9): scripts, styles, fonts and images are
# the app's own files. `data:`/`blob:` images are the QR codes and camera frames.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "font-src 'self'",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    )
)
# The scanner's QR decoder is WebAssembly: compiling it needs 'wasm-unsafe-eval' (never 'unsafe-eval').
CONTENT_SECURITY_POLICY_WASM = CONTENT_SECURITY_POLICY.replace(
    "script-src 'self'", "script-src 'self' 'wasm-unsafe-eval'"
)


def csp_allow_wasm(view):
    """Lets the page of `view` compile WebAssembly (the scanner's decoder), nothing more."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY_WASM
        return response

    return wrapped


# Third-party pages whose templates carry inline styles (Django's admin, the API docs): styles
# only; their scripts are files.
CONTENT_SECURITY_POLICY_INLINE_STYLES = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)
INLINE_STYLE_PREFIXES = ("/admin/", "/api/docs/")


class ContentSecurityPolicyMiddleware:
    """The strict policy on every response that has not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(INLINE_STYLE_PREFIXES):
            policy = CONTENT_SECURITY_POLICY_INLINE_STYLES
        else:
            policy = CONTENT_SECURITY_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        return response


class FriendlyNotFoundMiddleware:
    """A page that refuses with 404 (a senior outside one's scope, an unknown record) shows the
    friendly "not found" page even with DEBUG on, as `make run` is: that is what people try the
    product with. Unknown URLs keep Django's own handling (its debug page lists the routes)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404):
            from config.views import not_found

            return not_found(request, exception)
        return None


_log = logging.getLogger("config.database")

# How long a client is asked to wait before sending again after the database went away.
DATABASE_RETRY_AFTER_SECONDS = 3


def database_unavailable(request, exception) -> object | None:
    """A retryable 503 for a request that failed because the database connection failed (a
    PostgreSQL restart killed it, a failover, a lock timeout): JSON `service_unavailable` under
    /api/, a plain page elsewhere. None for any other exception."""
    if not isinstance(exception, OperationalError | InterfaceError):
        return None
    from config.views import service_unavailable

    return service_unavailable(request, retry_after=DATABASE_RETRY_AFTER_SECONDS)


class DatabaseUnavailableMiddleware:
    """Turns a view's database connection failure into a retryable 503 (`database_unavailable`);
    failures outside a view reach `config.views.server_error`, which does the same."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        response = database_unavailable(request, exception)
        if response is not None:
            _log.warning("database unavailable for %s %s: %r", request.method, request.path, exception)
        return response


# Where a signed-in user who still owes the second factor may go: signing in and out, the second
# factor's own pages, the language switch, static files and the senior's page (no sign-in).
SECOND_FACTOR_OPEN_PREFIXES = (
    "/login/",
    "/logout/",
    "/otp/",
    "/i18n/",
    "/static/",
    "/admin/login/",
    "/admin/logout/",
    "/v/",
)


class SecondFactorMiddleware:
    """Sends a signed-in finance, bureau or superuser account that has not given its second factor
    in this session to the page that asks for it (or enrols it), and keeps such sessions to a
    working day idle (config.second_factor). Under /api/ a session answers JSON 403
    `second_factor_required`; a device's API request (a staff phone) never has a session."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from config import second_factor

        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not second_factor.requires_second_factor(user):
            return self.get_response(request)
        request._roles = second_factor.roles_of(user)  # read once: config.views reuses it
        second_factor.keep_session_alive(request)
        if user.is_verified() or request.path_info.startswith(SECOND_FACTOR_OPEN_PREFIXES):
            return self.get_response(request)
        return self.refuse(request)

    @staticmethod
    def refuse(request):
        from django.http import JsonResponse
        from django.shortcuts import redirect
        from django.urls import reverse
        from django.utils.http import urlencode
        from django.utils.translation import gettext as _

        from config.api import error_body

        if request.path_info.startswith("/api/"):
            detail = _("Give your second factor on the sign-in page first.")
            return JsonResponse(error_body("second_factor_required", detail), status=403)
        back_to = request.get_full_path() if request.method == "GET" else "/"
        return redirect(f"{reverse('otp-verify')}?{urlencode({'next': back_to})}")
