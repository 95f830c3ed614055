"""Writes of the providers app."""

import secrets

from django.contrib.auth import authenticate
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from providers.errors import ProviderError
from providers.models import Device, StaffMember


def _active_staff_member(user) -> StaffMember:
    staff = StaffMember.objects.select_related("provider").filter(user=user).first()
    if staff is None or not staff.is_active or not staff.provider.is_active:
        raise ProviderError("not_permitted", _("This account is not an active provider staff member."))
    return staff


@transaction.atomic
def register_device(*, user, name: str = "") -> tuple[Device, str]:
    """Give a staff member's phone its own token. Returns the device and the raw token, once.

    Only the token's SHA-256 is stored. Refuses `not_permitted` for users who are not active
    staff of an active provider.
    """
    staff = _active_staff_member(user)
    raw_token = secrets.token_urlsafe(32)
    device = Device.objects.create(
        staff=staff,
        token_hash=Device.hash_token(raw_token),
        token_prefix=raw_token[:8],
        name=(name or "")[:100],
    )
    return device, raw_token


def sign_in_device(
    *, username: str, password: str, device_name: str = "", request=None
) -> tuple[Device, str]:
    """Check a staff member's password and register the device they sign in from.

    Refuses `not_authenticated` for wrong credentials (without saying which part was wrong) and
    `not_permitted` for accounts that are not active staff.
    """
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ProviderError("not_authenticated", _("The username or password is wrong."))
    return register_device(user=user, name=device_name)


@transaction.atomic
def revoke_device(*, device: Device) -> Device:
    """Revoke one device's token; the staff member's other devices keep working."""
    if device.revoked_at is None:
        device.revoked_at = timezone.now()
        device.save(update_fields=["revoked_at"])
    return device
