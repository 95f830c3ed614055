"""API authentication by device token (`Authorization: Bearer <token>`).

Each signed-in phone has its own token; only its SHA-256 is stored, so a leaked database does
not leak working tokens, and one lost phone can be revoked without signing out the others.
"""

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from config.orm import PreparedStatement, loaded
from providers.models import Device, Provider, StaffMember

KEYWORDS = ("bearer", "token")
DEVICE_FIELDS = [
    "staff__provider__id",
    "staff__provider__code",
    "staff__provider__name",
    "staff__provider__is_active",
    "staff__user__id",
    "staff__user__username",
    "staff__user__is_active",
    "staff__user__is_superuser",
    "staff__id",
    "staff__display_name",
    "staff__is_active",
    "last_used_at",
    "revoked_at",
]


class DeviceTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in KEYWORDS:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        raw_token = header[1].decode(errors="replace")
        device = _device_by_token_hash(Device.hash_token(raw_token))
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


@functools.cache
def _device_statement() -> PreparedStatement:
    User = get_user_model()
    return PreparedStatement(
        "homecare_device_by_token",
        f"""
        SELECT d.id, d.staff_id, d.last_used_at, s.user_id, s.provider_id, s.display_name, s.is_active,
               u.username, u.is_active, u.is_superuser, p.code, p.name, p.is_active
        FROM {Device._meta.db_table} d
        JOIN {StaffMember._meta.db_table} s ON s.id = d.staff_id
        JOIN {User._meta.db_table} u ON u.id = s.user_id
        JOIN {Provider._meta.db_table} p ON p.id = s.provider_id
        WHERE d.token_hash = %(token_hash)s::text AND d.revoked_at IS NULL
        """,  # noqa: S608 - table names from model metadata, the hash is a parameter
    )


def _device_by_token_hash(token_hash: str) -> Device | None:
    """The signed-in device of a token, with its staff member, user and provider: read on every
    API request, so one narrow statement on PostgreSQL (the ORM elsewhere)."""
    if connection.vendor != "postgresql":
        return (
            Device.objects.select_related("staff__user", "staff__provider")
            # What every scan reads; anything else loads when asked (once per request, on every
            # request: keep it narrow).
            .only(*DEVICE_FIELDS)
            .filter(token_hash=token_hash, revoked_at__isnull=True)
            .order_by()
            .first()
        )
    User = get_user_model()
    with connection.cursor() as cursor:
        _device_statement().execute(cursor, {"token_hash": token_hash})
        row = cursor.fetchone()
    if row is None:
        return None
    (device_id, staff_id, last_used_at, user_id, provider_id, display_name, staff_active, username,
     user_active, superuser, code, name, provider_active) = row  # fmt: skip
    device = loaded(Device, {"id": device_id, "staff_id": staff_id, "last_used_at": last_used_at})
    staff = loaded(
        StaffMember,
        {
            "id": staff_id,
            "user_id": user_id,
            "provider_id": provider_id,
            "display_name": display_name,
            "is_active": staff_active,
        },
    )
    user = loaded(
        User, {"id": user_id, "username": username, "is_active": user_active, "is_superuser": superuser}
    )
    staff.user = user
    staff.provider = loaded(
        Provider, {"id": provider_id, "code": code, "name": name, "is_active": provider_active}
    )
    device.staff = staff
    User.staff_member.related.set_cached_value(user, staff)  # user.staff_member without a query
    return device


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
