"""A second factor for the roles that move money and set policy (issue 11): `finance`, `bureau`
and superusers sign in with their password and then a TOTP code from an authenticator app
(django-otp), or one of ten single-use recovery codes. The app is enrolled on the first sign-in,
from a QR code. Their sessions end after `SECOND_FACTOR_SESSION_IDLE_HOURS` (a working day) idle.

The demo's logins skip it only with DEBUG on (`SECOND_FACTOR_SKIP_USERNAMES`, empty otherwise).
"""

import base64
import io
import time

import qrcode
import qrcode.image.pil
from django.conf import settings
from django.db import transaction
from django_otp import login as otp_login
from django_otp import match_token
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.roles import BUREAU, FINANCE, roles_of

SECOND_FACTOR_ROLES = frozenset({BUREAU, FINANCE})
RECOVERY_CODES = 10
AUTHENTICATOR = "authenticator"
RECOVERY = "recovery"
# The session's idle clock is pushed forward at most this often (each push saves the session).
SEEN_EVERY_SECONDS = 300
SEEN_KEY = "homecare_seen"


def requires_second_factor(user) -> bool:
    if not user.is_authenticated:
        return False
    if settings.DEBUG and user.get_username() in settings.SECOND_FACTOR_SKIP_USERNAMES:
        return False
    return user.is_superuser or bool(SECOND_FACTOR_ROLES & set(roles_of(user)))


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_authenticator(user) -> TOTPDevice:
    """The authenticator being enrolled: made once, kept unconfirmed until a code from it is
    entered, so reloading the page shows the same QR code."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=AUTHENTICATOR).first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)


def secret_of(device: TOTPDevice) -> str:
    """The key as the apps take it typed in (base32), in groups of four."""
    key = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


def qr_data_uri(device: TOTPDevice) -> str:
    """The QR code an authenticator app scans, as a PNG data: URI (made here: nothing is loaded
    from the internet, and the page's CSP allows data: images)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.pil.PilImage, box_size=8, border=2)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _normalise(code: str) -> str:
    return "".join((code or "").split()).lower()


@transaction.atomic
def confirm_authenticator(request, *, code: str) -> list[str] | None:
    """Enrol the pending authenticator if `code` is its current one: confirm it, replace the
    recovery codes with ten new ones, and mark this session verified. Returns the recovery codes
    (to be shown once), or None for a wrong code (nothing changes)."""
    user = request.user
    device = (
        TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False, name=AUTHENTICATOR).first()
    )
    if device is None or not device.verify_token(_normalise(code)):
        return None
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    StaticDevice.objects.filter(user=user).delete()
    recovery = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=token) for token in codes])
    otp_login(request, device)
    return codes


def verify(request, *, code: str) -> bool:
    """Mark this session verified if `code` is the user's current TOTP code or an unused recovery
    code (which is used up). django-otp slows down repeated wrong codes per device."""
    device = match_token(request.user, _normalise(code))
    if device is None:
        return False
    otp_login(request, device)
    return True


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def keep_session_alive(request) -> None:
    """Idle expiry for sessions that need the second factor: each request (at most every five
    minutes) sets the session to end `SECOND_FACTOR_SESSION_IDLE_HOURS` from now."""
    now = int(time.time())
    if now - request.session.get(SEEN_KEY, 0) >= SEEN_EVERY_SECONDS:
        request.session[SEEN_KEY] = now
        request.session.set_expiry(int(settings.SECOND_FACTOR_SESSION_IDLE_HOURS * 3600))
