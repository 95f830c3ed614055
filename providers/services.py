"""Writes of the providers app."""

import secrets
from dataclasses import dataclass

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.roles import OFFICER, PROVIDER_ROLES, REGION_ROLES, ROLE_NAMES, WORKER, roles_of
from eligibility.errors import EligibilityError
from eligibility.selectors import scope_region
from eligibility.services import assign_region_scope
from providers.errors import ProviderError
from providers.models import Device, StaffMember
from providers.selectors import may_manage_accounts


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


# --- Accounts: who works in which role, where (DESIGN.md §8) ---------------------------------------


@dataclass(frozen=True)
class AccountChange:
    user: object
    created: bool
    changed: list[str]


def _log_account(*, by, user, created: bool, changed: list[str]) -> None:
    """An entry in Django's action log (who, when, what), shown in the admin's history."""
    if by is None or not changed:
        return
    LogEntry.objects.log_actions(
        user_id=by.pk,
        queryset=[user],
        action_flag=ADDITION if created else CHANGE,
        change_message=[{"added" if created else "changed": {"fields": changed}}],
        single_object=True,
    )


@transaction.atomic
def save_account(
    *,
    by,
    user=None,
    username: str = "",
    full_name: str,
    role: str,
    region=None,
    provider=None,
    employee_number: str = "",
    is_active: bool = True,
    password: str | None = None,
) -> AccountChange:
    """Create an account (`user` None) or change one: its role, its region or provider, whether
    it may sign in. A worker gets one community, an officer a subdistrict or district, the bureau
    optionally a part of the city; provider managers and staff get their provider.

    One role per account; other groups are kept. Logged in the action log. Refuses:
    `invalid_input` (unknown role, missing region or provider, a region that does not fit the
    role), `duplicate_username`, `weak_password` (Django's validators), `not_permitted` (a
    manager who may not manage accounts, or a change of their own role, region or access).
    """
    if by is not None and not may_manage_accounts(by):
        raise ProviderError(
            "not_permitted", _("Accounts are managed by bureau administrators of the whole city.")
        )
    if role not in ROLE_NAMES:
        raise ProviderError("invalid_input", _("Choose a role."), field="role")
    if role in PROVIDER_ROLES and provider is None:
        raise ProviderError(
            "invalid_input", _("Choose the provider this person works for."), field="provider"
        )
    if role in (OFFICER, WORKER) and region is None:
        raise ProviderError("invalid_input", _("Choose the region this person works in."), field="region")
    full_name = " ".join((full_name or "").split())
    if not full_name:
        raise ProviderError("invalid_input", _("The name is required."), field="full_name")
    User = get_user_model()
    created = user is None
    changed: list[str] = []
    if created:
        username = (username or "").strip()
        if not username:
            raise ProviderError("invalid_input", _("The username is required."), field="username")
        if User.objects.filter(username__iexact=username).exists():
            raise ProviderError("duplicate_username", _("This username is taken."), field="username")
        user = User(username=username)
        if not password:
            raise ProviderError("invalid_input", _("Give a first password."), field="password")
    elif user.pk == getattr(by, "pk", None) and (
        not is_active or set(roles_of(user)) != {role} or scope_region(user) != region
    ):
        # Nobody hands themselves another role or region, nor signs themselves out.
        raise ProviderError("not_permitted", _("You cannot change your own role, region or access."))
    if password:
        try:
            validate_password(password, user=user)
        except DjangoValidationError as error:
            raise ProviderError("weak_password", " ".join(error.messages), field="password") from None
        user.set_password(password)
        changed.append("password")
    if user.first_name != full_name:
        user.first_name, user.last_name = full_name, ""
        changed.append("name")
    if user.is_active != is_active:
        user.is_active = is_active
        changed.append("active")
    user.save()

    role_groups = {group.name: group for group in Group.objects.filter(name__in=ROLE_NAMES)}
    if set(roles_of(user)) != {role}:
        user.groups.remove(*role_groups.values())
        user.groups.add(
            role_groups[role] if role in role_groups else Group.objects.get_or_create(name=role)[0]
        )
        user._role_codes = [role]
        changed.append("role")

    wanted_region = region if role in REGION_ROLES else None
    if scope_region(user) != wanted_region:
        try:
            assign_region_scope(user=user, region=wanted_region, by=by)
        except EligibilityError as error:
            raise ProviderError(error.code, error.message, field="region", **error.params) from None
        changed.append("region")

    staff = StaffMember.objects.filter(user=user).first()
    if role in PROVIDER_ROLES:
        number = (employee_number or "").strip() or (staff.employee_number if staff else f"U{user.pk:05d}")
        if staff is None:
            StaffMember.objects.create(
                user=user, provider=provider, employee_number=number, display_name=full_name[:50]
            )
            changed.append("provider")
        elif (staff.provider_id, staff.is_active, staff.display_name, staff.employee_number) != (
            provider.pk,
            True,
            full_name[:50],
            number,
        ):
            staff.provider, staff.is_active, staff.display_name, staff.employee_number = (
                provider,
                True,
                full_name[:50],
                number,
            )
            staff.save()
            changed.append("provider")
    elif staff is not None and staff.is_active:
        staff.is_active = False  # no longer scanning for anyone; their redemptions keep the link
        staff.save(update_fields=["is_active"])
        changed.append("provider")
    _log_account(by=by, user=user, created=created, changed=changed)
    return AccountChange(user=user, created=created, changed=changed)
