"""Test helpers for the second factor (config.second_factor)."""

from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.second_factor import requires_second_factor


def authenticator_of(user) -> TOTPDevice:
    """The user's enrolled authenticator app (made if missing), as after a first sign-in."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    """The 6 digits the authenticator app shows now."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def verify_session(client, user) -> None:
    """Mark the test client's session as having given the second factor, for a user who needs it:
    what signing in with the password and then the app's code does."""
    if not requires_second_factor(user):
        return
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = authenticator_of(user).persistent_id
    session.save()
