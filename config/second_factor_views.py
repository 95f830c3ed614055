"""The second factor's pages (config.second_factor): enrol an authenticator app from a QR code,
keep the recovery codes, and give a code after the password. Phone-first, like every page."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from config import second_factor

RECOVERY_CODES_KEY = "homecare_recovery_codes"


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("home")


def _with_next(name: str, target: str) -> str:
    return f"{reverse(name)}?{urlencode({'next': target})}"


@never_cache
@login_required
@sensitive_post_parameters("code")
def verify(request):
    """After the password: a code from the authenticator app, or a recovery code."""
    target = _next(request)
    if not second_factor.requires_second_factor(request.user) or request.user.is_verified():
        return redirect(target)
    if not second_factor.has_authenticator(request.user):
        return redirect(_with_next("otp-setup", target))
    error = None
    if request.method == "POST":
        if second_factor.verify(request, code=request.POST.get("code", "")):
            return redirect(target)
        error = _(
            "That code is not right. Enter the 6 digits your authenticator app shows now, or a recovery code."
        )
    return render(request, "otp/verify.html", {"next": target, "error": error}, status=400 if error else 200)


@never_cache
@login_required
@sensitive_post_parameters("code")
def setup(request):
    """First sign-in: scan the QR code with an authenticator app, enter its code. Only for an
    account without an authenticator: replacing one needs an administrator (a stolen password
    alone must not enrol a new one)."""
    target = _next(request)
    if not second_factor.requires_second_factor(request.user) or second_factor.has_authenticator(
        request.user
    ):
        return redirect(_with_next("otp-verify", target))
    device = second_factor.pending_authenticator(request.user)
    error = None
    if request.method == "POST":
        codes = second_factor.confirm_authenticator(request, code=request.POST.get("code", ""))
        if codes is not None:
            request.session[RECOVERY_CODES_KEY] = codes
            return redirect(_with_next("otp-recovery-codes", target))
        error = _(
            "That code is not right. Enter the 6 digits your authenticator app shows now for this account."
        )
    context = {
        "next": target,
        "error": error,
        "qr": second_factor.qr_data_uri(device),
        "secret": second_factor.secret_of(device),
    }
    return render(request, "otp/setup.html", context, status=400 if error else 200)


@never_cache
@login_required
def recovery_codes(request):
    """The recovery codes, shown once, right after enrolling."""
    codes = request.session.pop(RECOVERY_CODES_KEY, None)
    if not codes:
        return redirect(_next(request))
    return render(request, "otp/recovery_codes.html", {"codes": codes, "next": _next(request)})
