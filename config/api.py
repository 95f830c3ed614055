"""One place that turns every API failure into `{"code": ..., "detail": ...}`.

Domain refusals, DRF's own exceptions (authentication, permission, throttling, parsing,
validation), Django's 404 and PermissionDenied all leave as JSON with a stable code; the detail is
in the language of the request (Accept-Language, zh-Hans by default).
"""

import math

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config.errors import DomainError

STATUS_BY_CODE = {
    "invalid_input": status.HTTP_400_BAD_REQUEST,
    "invalid_token": status.HTTP_400_BAD_REQUEST,
    "not_authenticated": status.HTTP_401_UNAUTHORIZED,
    "not_permitted": status.HTTP_403_FORBIDDEN,
    "not_contracted": status.HTTP_403_FORBIDDEN,
    "outside_service_area": status.HTTP_403_FORBIDDEN,
    "not_found": status.HTTP_404_NOT_FOUND,
    "method_not_allowed": status.HTTP_405_METHOD_NOT_ALLOWED,
    "rate_limited": status.HTTP_429_TOO_MANY_REQUESTS,
}
# Every other domain code is a refusal given the current state of things.
DEFAULT_DOMAIN_STATUS = status.HTTP_409_CONFLICT


def error_body(code: str, detail: str, **extra) -> dict:
    return {"code": code, "detail": detail, **extra}


def _flatten_validation(detail) -> tuple[str, dict]:
    """The first message of a DRF validation error, plus the field errors for clients."""
    if isinstance(detail, dict):
        fields = {
            key: [str(m) for m in (value if isinstance(value, list) else [value])]
            for key, value in detail.items()
        }
        first_field, messages = next(iter(fields.items()))
        return f"{first_field}: {messages[0]}", {"fields": fields}
    if isinstance(detail, list) and detail:
        return str(detail[0]), {}
    return str(detail), {}


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        response = Response(
            error_body(exc.code, exc.detail, **exc.extra),
            status=STATUS_BY_CODE.get(exc.code, DEFAULT_DOMAIN_STATUS),
        )
        if exc.code == "rate_limited" and "retry_after" in exc.extra:
            response["Retry-After"] = str(exc.extra["retry_after"])
        return response
    if isinstance(exc, Http404 | exceptions.NotFound):
        return Response(error_body("not_found", _("Not found.")), status=404)
    if isinstance(exc, PermissionDenied | exceptions.PermissionDenied):
        return Response(error_body("not_permitted", _("You are not permitted to do this.")), status=403)
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        response = Response(
            error_body("not_authenticated", _("Sign in first: the credentials are missing or invalid.")),
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, exceptions.Throttled):
        seconds = max(1, math.ceil(exc.wait or 1))
        response = Response(
            error_body(
                "rate_limited",
                _("Too many requests; try again in %(seconds)s seconds.") % {"seconds": seconds},
            ),
            status=429,
        )
        response["Retry-After"] = str(seconds)
        return response
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response(error_body("method_not_allowed", _("This method is not allowed here.")), status=405)
    if isinstance(exc, exceptions.ValidationError):
        detail, extra = _flatten_validation(exc.detail)
        return Response(error_body("invalid_input", detail, **extra), status=400)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return Response(
            error_body("invalid_input", _("Send the request body as JSON (Content-Type: application/json).")),
            status=415,
        )
    if isinstance(exc, exceptions.ParseError):
        # Our parser's own messages (too large, too deep, not JSON); never the parser's internals.
        detail = str(exc.detail) if exc.detail != exceptions.ParseError.default_detail else ""
        return Response(
            error_body("invalid_input", detail or _("The request body is not valid JSON.")), status=400
        )
    if isinstance(exc, exceptions.APIException):
        return Response(error_body(exc.default_code, str(exc.detail)), status=exc.status_code)
    return None


RECORDED = "homecare_recorded"


def mark_recorded(request) -> None:
    """Say that this request's write has committed: a failure from here on answers "recorded"."""
    setattr(getattr(request, "_request", request), RECORDED, True)


@csrf_exempt
def json_not_found(request, exception=None):
    """Unknown API paths, for every method: JSON 404 (never CSRF's HTML page for a POST)."""
    return JsonResponse(error_body("not_found", _("Not found.")), status=404)


def json_server_error(request):
    """A failure nobody foresaw. It never claims nothing was written unless that is certain: after
    a commit (`mark_recorded`) it says the service was recorded, and otherwise how to find out."""
    if getattr(request, RECORDED, False):
        detail = _(
            "Your request was recorded, but answering it failed on our side. Do not scan again: "
            "the recent list shows the record."
        )
        return JsonResponse(error_body("server_error_recorded", detail, recorded=True), status=500)
    detail = _(
        "Something went wrong on our side. Whether it was recorded is not known: send it again with "
        "the same idempotency key (never recorded twice), or check the recent list."
    )
    return JsonResponse(error_body("server_error", detail, recorded=None), status=500)


def json_service_unavailable(request, *, retry_after: int):
    """The database went away under this request (a restart, a failover): retryable. Like a 500 it
    says "recorded" only after a commit, and otherwise that sending it again is safe."""
    if getattr(request, RECORDED, False):
        detail = _(
            "Your request was recorded, but the service became unavailable before answering. Do not "
            "scan again: the recent list shows the record."
        )
        recorded = True
    else:
        detail = _(
            "The service is briefly unavailable. Send the request again in a few seconds with the same "
            "idempotency key: it is never recorded twice."
        )
        recorded = None
    response = JsonResponse(error_body("service_unavailable", detail, recorded=recorded), status=503)
    response["Retry-After"] = str(retry_after)
    return response


def json_csrf_failure(request, reason=""):
    return JsonResponse(
        error_body("not_permitted", _("The request was refused: its CSRF token is missing or wrong.")),
        status=403,
    )
