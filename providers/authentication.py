"""API authentication by device token (`Authorization: Bearer <token>`).

Each signed-in phone has its own token; only its SHA-256 is stored, so a leaked database does
not leak working tokens, and one lost phone can be revoked without signing out the others.
"""

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from providers.models import Device

KEYWORDS = ("bearer", "token")


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        raw_token = header[1].decode(errors="replace")
        device = (
            Device.objects.select_related("staff__user", "staff__provider")
            .filter(token_hash=Device.hash_token(raw_token), revoked_at__isnull=True)
            .first()
        )
        if device is None:
            raise exceptions.AuthenticationFailed(_("The device token is invalid or revoked."))
        if not device.staff.is_active or not device.staff.user.is_active:
            # A deactivated staff member: known phone, but the person may no longer scan or void,
            # whatever token they hold (`not_permitted`, as for a suspended provider's staff).
            raise exceptions.PermissionDenied(_("This staff member has been deactivated."))
        # Touch at most once a minute: avoid a write on every scan.
        now = timezone.now()
        if device.last_used_at is None or (now - device.last_used_at).total_seconds() > 60:
            Device.objects.filter(pk=device.pk).update(last_used_at=now)
        request.device = device
        return device.staff.user, device

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class DeviceTokenScheme(OpenApiAuthenticationExtension):
    """Tells the OpenAPI schema how scanning devices authenticate."""

    target_class = "providers.authentication.DeviceTokenAuthentication"
    name = "deviceToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Device token from POST /api/v1/auth/token/",
        }
