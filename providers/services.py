"""Writes of the providers app."""

import math
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength
from stdnum.exceptions import ValidationError as StdnumValidationError

from billing import pricing
from config import signin
from config.roles import OFFICER, PROVIDER_ROLES, REGION_ROLES, ROLE_NAMES, STAFF, WORKER, roles_of
from eligibility.errors import EligibilityError
from eligibility.normalise import normalise_phone, normalise_text
from eligibility.selectors import scope_region
from eligibility.services import assign_region_scope
from providers.errors import ProviderError
from providers.models import (
    Contract,
    ContractItem,
    Device,
    Provider,
    ProviderStatusChange,
    ServiceItem,
    StaffMember,
)
from providers.selectors import may_manage_accounts, may_manage_providers, overlapping_contract, runs_team


def _active_staff_member(user) -> StaffMember:
    staff = StaffMember.objects.select_related("provider").filter(user=user).first()
    if staff is None or not staff.is_active or not staff.provider.is_active:
        raise ProviderError("not_permitted", _("This account is not an active provider staff member."))
    return staff


def is_active_staff(user) -> bool:
    try:
        _active_staff_member(user)
    except ProviderError:
        return False
    return True


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

    Refuses `not_authenticated` alike for a wrong password, an unknown username and an account
    that is not active staff of an active provider (the superuser's included): the answer is no
    oracle for passwords. Each refusal counts towards the sign-in lockout (config.signin); while
    the username or the address is locked out, every try is refused `rate_limited`.
    `request` is Django's HttpRequest (the lockout reads its address).
    """
    user = authenticate(request, username=username, password=password)
    if user is not None and not is_active_staff(user):
        signin.count_failure(request, username)
        user = None
    if user is None:
        if signin.is_locked_out(request):
            raise ProviderError(
                "rate_limited", signin.locked_message(), extra={"retry_after": signin.lockout_seconds()}
            )
        raise ProviderError("not_authenticated", _("The username or password is wrong."))
    registered = register_device(user=user, name=device_name)
    signin.count_success(request, user)
    return registered


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


# --- A provider manager's team: staff accounts and devices (/providers/<id>/staff|devices/) --------


def _check_runs_team(*, by, provider, permission: str) -> None:
    if by is None or not runs_team(by, provider=provider, permission=permission):
        raise ProviderError("not_permitted", _("Only this provider's manager may change its team."))


def _log_team_change(*, by, obj, action_flag: int, message: str) -> None:
    """An entry in Django's action log (who, when, what), like the accounts page's."""
    LogEntry.objects.log_actions(
        user_id=by.pk, queryset=[obj], action_flag=action_flag, change_message=message, single_object=True
    )


@transaction.atomic
def add_staff_member(
    *, by, provider, full_name: str, employee_number: str, username: str, password: str
) -> StaffMember:
    """A new service-staff account (role `staff`) of `provider`, made by its manager, with a
    first password checked by Django's validators. The person can then sign a phone in.

    Logged in the action log. Refuses: `not_permitted` (not this provider's manager),
    `invalid_input` (a missing name, employee number, username or password),
    `duplicate_employee_number` (taken in this provider), `duplicate_username`, `weak_password`.
    """
    _check_runs_team(by=by, provider=provider, permission="providers.add_staffmember")
    employee_number = (employee_number or "").strip()
    if not employee_number:
        raise ProviderError("invalid_input", _("The employee number is required."), field="employee_number")
    taken = _("Another staff member of this provider has this employee number.")
    if StaffMember.objects.filter(provider=provider, employee_number=employee_number).exists():
        raise ProviderError("duplicate_employee_number", taken, field="employee_number")
    try:
        with transaction.atomic():
            # The accounts page's own writer makes the account; the manager's check is above.
            made = save_account(
                by=None,
                username=username,
                full_name=full_name,
                role=STAFF,
                provider=provider,
                employee_number=employee_number,
                password=password or None,
            )
    except IntegrityError:
        # The same number or username committed by a concurrent request since the checks: say which.
        if get_user_model().objects.filter(username__iexact=(username or "").strip()).exists():
            raise ProviderError(
                "duplicate_username", _("This username is taken."), field="username"
            ) from None
        raise ProviderError("duplicate_employee_number", taken, field="employee_number") from None
    _log_account(by=by, user=made.user, created=True, changed=made.changed)
    return made.user.staff_member


@transaction.atomic
def set_staff_active(*, by, staff: StaffMember, active: bool, reason: str) -> StaffMember:
    """Deactivate (or reactivate) one staff member of the manager's provider, with a reason.

    Deactivated, the person's account is inactive: they are signed out of the pages and cannot
    sign a phone in; every device token they hold is refused `not_permitted` from that moment
    (providers.authentication), so they neither scan nor void. Their devices are kept, and listed
    on the devices page, where the manager may revoke them. Locks the staff row. Logged with the
    reason. Refuses: `not_permitted` (not this provider's manager; one's own account; a
    manager's account or one that no longer has the staff role, both the bureau's; reactivating
    an account the bureau switched off on its accounts page),
    `invalid_input` (no reason).
    """
    staff = StaffMember.objects.select_for_update().select_related("user", "provider").get(pk=staff.pk)
    _check_runs_team(by=by, provider=staff.provider, permission="providers.change_staffmember")
    if staff.user_id == by.pk:
        raise ProviderError("not_permitted", _("You cannot deactivate or reactivate yourself."))
    if not by.is_superuser and roles_of(staff.user) != [STAFF]:
        raise ProviderError(
            "not_permitted",
            _("Only service staff are changed here; a manager's account is the bureau's to change."),
        )
    reason = " ".join((reason or "").split())
    if not reason:
        raise ProviderError("invalid_input", _("Say why."), field="reason")
    if staff.is_active == active and staff.user.is_active == active:
        return staff
    if active and staff.is_active and not staff.user.is_active and not by.is_superuser:
        # Working for the provider, but the account was switched off on the bureau's accounts page.
        raise ProviderError(
            "not_permitted",
            _("This account was switched off by the bureau; ask the bureau to switch it on again."),
        )
    staff.is_active = active
    staff.save(update_fields=["is_active"])
    staff.user.is_active = active
    staff.user.save(update_fields=["is_active"])
    what = "Reactivated" if active else "Deactivated"
    _log_team_change(
        by=by,
        obj=staff.user,
        action_flag=CHANGE,
        message=f"{what} by the provider's team page: {reason[:200]}",
    )
    return staff


@transaction.atomic
def revoke_team_device(*, by, device: Device) -> Device:
    """Revoke a device of the manager's own provider's staff, at once: its next request is
    refused `not_authenticated`; the person's other devices keep working. Logged. Refuses
    `not_permitted` for a device of another provider's staff."""
    device = Device.objects.select_for_update().select_related("staff__provider").get(pk=device.pk)
    _check_runs_team(by=by, provider=device.staff.provider, permission="providers.change_device")
    if device.revoked_at is None:
        revoke_device(device=device)
        _log_team_change(
            by=by, obj=device, action_flag=CHANGE, message="Revoked on the provider's team page."
        )
    return device


# --- The bureau's providers, their contracts and the service catalogue (/providers/) -----------

CREDIT_CODE_REASONS = {
    InvalidLength: _("The unified social credit code has 18 characters."),
    InvalidFormat: _(
        "The unified social credit code is 8 digits, then 10 digits or capital letters (not I, O, S, V or Z)."
    ),
    InvalidChecksum: _(
        "The last character of the unified social credit code (its check character) does not match; "
        "please check it for a typing error."
    ),
    StdnumValidationError: _("The unified social credit code is not valid."),
}
MAX_STEP = Decimal("99.99")


def _check_manages_providers(by) -> None:
    if by is None or not may_manage_providers(by):
        raise ProviderError(
            "not_permitted",
            _("Providers and their contracts are managed by the city's bureau administrators."),
        )


def _log_change(*, by, obj, created: bool, changed: list[str], message: str = "") -> None:
    """An entry in Django's action log (who, when, what), as for accounts."""
    if not changed and not message:
        return
    LogEntry.objects.log_actions(
        user_id=by.pk,
        queryset=[obj],
        action_flag=ADDITION if created else CHANGE,
        change_message=message or [{"added" if created else "changed": {"fields": changed}}],
        single_object=True,
    )


def normalise_credit_code(raw) -> str:
    """A unified social credit code (统一社会信用代码) checked with python-stdnum's cn.uscc:
    18 characters and the check character. Full-width characters, spaces and dashes are
    accepted. Refuses `invalid_credit_code` saying which part is wrong."""
    try:
        return uscc.validate(normalise_text(raw).replace(" ", ""))
    except StdnumValidationError as error:
        reason = CREDIT_CODE_REASONS.get(type(error), CREDIT_CODE_REASONS[StdnumValidationError])
        raise ProviderError("invalid_credit_code", reason, field="credit_code") from None


@transaction.atomic
def save_provider(
    *,
    by,
    provider: Provider | None = None,
    code: str = "",
    name: str,
    name_en: str = "",
    credit_code: str,
    contact_phone: str = "",
) -> Provider:
    """Create a provider (`provider` None) or change its names, credit code and hotline. The code
    is fixed once created (commands and exports name providers by it). Logged in the action log.

    Refuses: `not_permitted` (not a city-wide bureau administrator), `invalid_input` (no code or
    name), `invalid_credit_code`, `invalid_phone`, `duplicate_provider` (code or credit code taken).
    """
    _check_manages_providers(by)
    created = provider is None
    if created:
        code = (code or "").strip().lower()
        if not code:
            raise ProviderError("invalid_input", _("The code is required."), field="code")
        if Provider.objects.filter(code=code).exists():
            raise ProviderError("duplicate_provider", _("Another provider has this code."), field="code")
        provider = Provider(code=code)
    else:
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
    values = {
        "name": normalise_text(name),
        "name_en": normalise_text(name_en),
        "credit_code": normalise_credit_code(credit_code),
    }
    if not values["name"]:
        raise ProviderError("invalid_input", _("The name is required."), field="name")
    try:
        values["contact_phone"] = normalise_phone(contact_phone, field="contact_phone")
    except EligibilityError as error:
        raise ProviderError(error.code, error.message, field="contact_phone") from None
    if Provider.objects.filter(credit_code=values["credit_code"]).exclude(pk=provider.pk).exists():
        raise ProviderError(
            "duplicate_provider",
            _("Another provider has this unified social credit code."),
            field="credit_code",
        )
    changed = [field for field, value in values.items() if getattr(provider, field) != value]
    for field, value in values.items():
        setattr(provider, field, value)
    if created or changed:
        provider.save()
    _log_change(by=by, obj=provider, created=created, changed=changed)
    return provider


def _set_provider_active(*, by, provider: Provider, active: bool, reason: str) -> ProviderStatusChange:
    _check_manages_providers(by)
    reason = " ".join((reason or "").split())
    if not reason:
        raise ProviderError("invalid_input", _("Say why."), field="reason")
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.is_active == active:
        already = (
            _("This provider is already active.") if active else _("This provider is already suspended.")
        )
        raise ProviderError("invalid_input", already)
    provider.is_active = active
    provider.save(update_fields=["is_active"])
    change = ProviderStatusChange.objects.create(
        provider=provider, is_active=active, reason=reason[:200], changed_by=by
    )
    _log_change(by=by, obj=provider, created=False, changed=["active"])
    return change


@transaction.atomic
def suspend_provider(*, by, provider: Provider, reason: str) -> ProviderStatusChange:
    """Suspend a provider (暂停), with a reason; who and when are recorded. From the commit on,
    every scan and void of its staff is refused `not_permitted`, whatever device token they hold
    (`vouchers.services` checks the provider on each one); recorded services stay as they are.
    Locks the provider row. Refuses `not_permitted`, `invalid_input` (no reason, already suspended).
    """
    return _set_provider_active(by=by, provider=provider, active=False, reason=reason)


@transaction.atomic
def reinstate_provider(*, by, provider: Provider, reason: str) -> ProviderStatusChange:
    """Let a suspended provider's staff scan again, with a reason; who and when are recorded.
    Refuses `not_permitted`, `invalid_input` (no reason, not suspended)."""
    return _set_provider_active(by=by, provider=provider, active=True, reason=reason)


def _date_text(day) -> str:
    return f"{day:%Y-%m-%d}"


# The model's checks (migration 0003): whole multiples of 3 minutes keep hours in hundredths.
VISIT_INCREMENT_MINUTES = range(3, 241, 3)
LONGEST_VISIT_MINUTES = 1440
DEFAULT_VISIT_INCREMENT = ContractItem._meta.get_field("visit_increment_minutes").default
DEFAULT_VISIT_MAX = ContractItem._meta.get_field("visit_max_minutes").default


@dataclass(frozen=True)
class ContractItemTerms:
    """One priced item as `save_contract` takes it. For an item priced per hour (checked in and
    out), also how its visits are counted; None keeps the item's current value (a new item gets
    the defaults, 30 minutes and 240). A plain (service item, unit price) pair means the same as
    terms with both None."""

    service_item: ServiceItem
    unit_price: Decimal
    visit_increment_minutes: int | None = None
    visit_max_minutes: int | None = None


def _item_terms(entry) -> ContractItemTerms:
    if isinstance(entry, ContractItemTerms):
        return entry
    service_item, unit_price = entry
    return ContractItemTerms(service_item=service_item, unit_price=unit_price)


def _whole_minutes(value) -> int | None:
    """`value` as a whole number of minutes, or None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return int(number) if number.is_finite() and number == number.to_integral_value() else None


def _smallest_increment(step: Decimal) -> int:
    """The shortest rounding, in minutes, that is a multiple of 3 and, in hours, of `step`."""
    hundredths = int(step * 100)  # a step is in hundredths of an hour; 3 minutes are 5 of them
    return 3 * hundredths // math.gcd(hundredths, 5)


def check_visit_limits(*, service_item: ServiceItem, increment_minutes, max_minutes) -> None:
    """How visits of `service_item` are counted at check-out: rounded to `increment_minutes` (a
    multiple of 3, from 3 to 240, and for an item priced per hour a whole number of its billing
    steps: an item billed by the half hour cannot round to 15 minutes) and closed as an exception
    after `max_minutes` (at least the increment, at most 1440). Either may be None: it is not
    checked. Pure apart from reading the item. Refuses `invalid_input` on the field concerned."""
    increment = None
    if increment_minutes is not None:
        increment = _whole_minutes(increment_minutes)
        if increment not in VISIT_INCREMENT_MINUTES:
            raise ProviderError(
                "invalid_input",
                _("%(item)s: visits are rounded to a multiple of 3 minutes, from 3 to 240."),
                field="visit_increment_minutes",
                item=service_item.name,
            )
        step = service_item.quantity_step
        if service_item.unit == ServiceItem.Unit.HOUR and step and (Decimal(increment) / 60) % step:
            smallest = _smallest_increment(step)
            if smallest > VISIT_INCREMENT_MINUTES[-1]:
                message = _(
                    "%(item)s is billed in steps of %(step)s hour, longer than any rounding allowed "
                    "(240 minutes): change its billing increment in the service catalogue."
                )
            else:
                message = _(
                    "%(item)s is billed in steps of %(step)s hour: round its visits to a multiple of "
                    "%(minutes)s minutes."
                )
            raise ProviderError(
                "invalid_input",
                message,
                field="visit_increment_minutes",
                item=service_item.name,
                step=f"{step.normalize():f}",
                minutes=smallest,
            )
    if max_minutes is not None:
        longest = _whole_minutes(max_minutes)
        if longest is None or longest > LONGEST_VISIT_MINUTES or longest < (increment or 3):
            raise ProviderError(
                "invalid_input",
                _(
                    "%(item)s: the longest visit is at least the rounding (%(increment)s minutes) "
                    "and at most 1440 minutes (24 hours)."
                ),
                field="visit_max_minutes",
                item=service_item.name,
                increment=increment or 3,
            )


@transaction.atomic
def save_contract(
    *,
    by,
    provider: Provider,
    contract: Contract | None = None,
    number: str,
    starts_on,
    ends_on,
    status: str = Contract.Status.ACTIVE,
    regions,
    items,
) -> Contract:
    """Create a contract of `provider` (`contract` None) or change one: its number, period,
    status, service area (`regions`; each covers its subtree, and a region inside another chosen
    one is not stored twice) and priced items (`items`: `ContractItemTerms`, or (ServiceItem,
    unit price) pairs, which keep an item's visit rounding and longest visit; an item left out
    is removed, unless services were recorded under it). A change of an item's price, rounding
    or longest visit is logged as a change of the items; visits already checked in keep theirs.

    Locks the provider row, so two writers of one provider's contracts take turns. Refuses:
    `not_permitted`, `invalid_input` (no number, an end before the start, no region, no item, an
    item twice, a price that is not above 0, a rounding or longest visit that `check_visit_limits`
    refuses), `duplicate_contract_number`, `contract_overlap`
    (another active contract of the provider covers one of the items in the same region, or in
    one above or below it, in an overlapping period; the message names it), `item_in_use`. On
    PostgreSQL and SQLite the database refuses the same-region overlap too (migration 0002).
    """
    _check_manages_providers(by)
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if contract is not None:
        contract = Contract.objects.select_for_update().get(pk=contract.pk)
        if contract.provider_id != provider.pk:
            raise ProviderError("not_found", _("This contract is not this provider's."))
    number = normalise_text(number)
    if not number:
        raise ProviderError("invalid_input", _("The contract number is required."), field="number")
    if Contract.objects.filter(number=number).exclude(pk=getattr(contract, "pk", None)).exists():
        raise ProviderError(
            "duplicate_contract_number", _("Another contract has this number."), field="number"
        )
    if starts_on is None or ends_on is None:
        raise ProviderError("invalid_input", _("Give the first and the last day."), field="starts_on")
    if ends_on < starts_on:
        raise ProviderError("invalid_input", _("The last day is before the first day."), field="ends_on")
    if status not in Contract.Status.values:
        raise ProviderError("invalid_input", _("Choose a status."), field="status")
    chosen = sorted(set(regions), key=lambda region: region.path)
    area = [r for r in chosen if not any(r.path.startswith(o.path) and r.pk != o.pk for o in chosen)]
    if not area:
        raise ProviderError("invalid_input", _("Choose at least one region."), field="service_area")
    prices: dict[int, tuple[ContractItemTerms, Decimal]] = {}
    for terms in map(_item_terms, items):
        service_item, unit_price = terms.service_item, terms.unit_price
        if service_item.pk in prices:
            raise ProviderError(
                "invalid_input",
                _("%(item)s is listed twice; give each service item once."),
                field="items",
                item=service_item.name,
            )
        try:
            price = Decimal(str(unit_price)).quantize(Decimal("0.01"))
        except (InvalidOperation, ValueError):
            price = Decimal("0")
        if price <= 0 or price >= Decimal("100000000"):
            raise ProviderError(
                "invalid_input",
                _("The unit price of %(item)s must be more than 0 yuan."),
                field="items",
                item=service_item.name,
            )
        prices[service_item.pk] = (terms, price)
    if not prices:
        raise ProviderError(
            "invalid_input", _("Give at least one service item and its price."), field="items"
        )
    if status == Contract.Status.ACTIVE:
        overlap = overlapping_contract(
            provider=provider,
            starts_on=starts_on,
            ends_on=ends_on,
            service_item_ids=prices,
            regions=area,
            exclude_pk=getattr(contract, "pk", None),
        )
        if overlap is not None:
            raise ProviderError(
                "contract_overlap",
                _(
                    "This overlaps contract %(number)s (%(starts_on)s to %(ends_on)s): both would cover "
                    "%(item)s in %(region)s at the same time. Change the period, the area or the items, "
                    "or end the other contract first."
                ),
                number=overlap.contract.number,
                starts_on=_date_text(overlap.contract.starts_on),
                ends_on=_date_text(overlap.contract.ends_on),
                item=overlap.service_item.name,
                region=overlap.region.name,
            )

    created = contract is None
    changed: list[str] = []
    if created:
        contract = Contract(provider=provider)
    old_area = set() if created else set(contract.service_area.values_list("pk", flat=True))
    old_items = (
        {} if created else {i.service_item_id: i for i in contract.items.select_related("service_item")}
    )
    # Each item's visit rounding and longest visit: as given, else as saved, else the defaults.
    visit_limits: dict[int, dict[str, int]] = {}
    for pk, (terms, _price) in prices.items():
        old = old_items.get(pk)
        limits = {
            "visit_increment_minutes": terms.visit_increment_minutes
            if terms.visit_increment_minutes is not None
            else getattr(old, "visit_increment_minutes", DEFAULT_VISIT_INCREMENT),
            "visit_max_minutes": terms.visit_max_minutes
            if terms.visit_max_minutes is not None
            else getattr(old, "visit_max_minutes", DEFAULT_VISIT_MAX),
        }
        check_visit_limits(
            service_item=terms.service_item,
            increment_minutes=limits["visit_increment_minutes"],
            max_minutes=limits["visit_max_minutes"],
        )
        visit_limits[pk] = {field: _whole_minutes(value) for field, value in limits.items()}
    # Removals first, then the period, then additions: every state in between is a part of the
    # old contract or of the new one, so the database's overlap triggers never refuse a valid edit.
    removed = [item for pk, item in old_items.items() if pk not in prices]
    for item in removed:
        # A visit checked in under it (even one still open) counts as a recorded service.
        if item.redemptions.exists() or item.visits.exists():
            raise ProviderError(
                "item_in_use",
                _(
                    "Services of %(item)s were recorded under this contract: it cannot be removed. End the contract instead."
                ),
                field="items",
                item=item.service_item.name,
            )
        item.delete()
    if removed:
        changed.append("items")
    if not created and old_area - {r.pk for r in area}:
        contract.service_area.remove(*(old_area - {r.pk for r in area}))
    values = {"number": number, "starts_on": starts_on, "ends_on": ends_on, "status": status}
    changed += [field for field, value in values.items() if getattr(contract, field, None) != value]
    for field, value in values.items():
        setattr(contract, field, value)
    if created or changed:
        contract.save()
    added_area = {r.pk for r in area} - old_area
    if added_area:
        contract.service_area.add(*added_area)
    if added_area or (old_area - {r.pk for r in area}):
        changed.append("service_area")
    for pk, (terms, price) in prices.items():
        item = old_items.get(pk)
        if item is None:
            ContractItem.objects.create(
                contract=contract, service_item=terms.service_item, unit_price=price, **visit_limits[pk]
            )
            changed.append("items")
            continue
        item_changed = [field for field, value in visit_limits[pk].items() if getattr(item, field) != value]
        for field in item_changed:
            setattr(item, field, visit_limits[pk][field])
        if item.unit_price.amount != price:
            item.unit_price = price
            item_changed.append("unit_price")
        if item_changed:
            item.save(update_fields=item_changed)
            changed.append("items")
    _log_change(by=by, obj=contract, created=created, changed=sorted(set(changed)))
    return contract


@transaction.atomic
def save_service_item(
    *,
    by,
    service_item: ServiceItem | None = None,
    code: str = "",
    name: str,
    name_en: str = "",
    unit: str,
    category: str,
    quantity_step,
    is_active: bool = True,
) -> ServiceItem:
    """Add an item to the service catalogue or change one: names, unit, category, billing
    increment (`quantity_step`: a redemption's quantity must be a positive multiple of it) and
    whether providers may record it. The code is fixed once created (the scanner sends it).
    Refuses: `not_permitted`, `invalid_input`, `duplicate_service_item`."""
    if by is None or not (may_manage_providers(by) and by.has_perm("providers.change_serviceitem")):
        raise ProviderError(
            "not_permitted", _("The service catalogue is managed by the city's bureau administrators.")
        )
    created = service_item is None
    if created:
        code = (code or "").strip().lower()
        if not code:
            raise ProviderError("invalid_input", _("The code is required."), field="code")
        if ServiceItem.objects.filter(code=code).exists():
            raise ProviderError(
                "duplicate_service_item", _("Another service item has this code."), field="code"
            )
        service_item = ServiceItem(code=code)
    else:
        service_item = ServiceItem.objects.select_for_update().get(pk=service_item.pk)
    step = pricing.parse_hundredths(quantity_step, maximum=MAX_STEP)
    if step is None:
        raise ProviderError(
            "invalid_input",
            _("The billing increment is a number above 0 and at most 99.99, in hundredths (e.g. 1 or 0.5)."),
            field="quantity_step",
        )
    values = {
        "name": normalise_text(name),
        "name_en": normalise_text(name_en),
        "unit": unit,
        "category": category,
        "quantity_step": step,
        "is_active": bool(is_active),
    }
    if not values["name"]:
        raise ProviderError("invalid_input", _("The name is required."), field="name")
    if unit not in ServiceItem.Unit.values:
        raise ProviderError("invalid_input", _("Choose a unit."), field="unit")
    if (
        not created
        and unit != service_item.unit
        and (service_item.redemptions.exists() or service_item.visits.exists())
    ):
        # Past services were priced per the old unit: "2" would then read as something else.
        raise ProviderError(
            "invalid_input",
            _("Services were recorded in this unit; the unit cannot change. Add a new item instead."),
            field="unit",
        )
    if category not in ServiceItem.Category.values:
        raise ProviderError("invalid_input", _("Choose a category."), field="category")
    changed = [field for field, value in values.items() if getattr(service_item, field, None) != value]
    for field, value in values.items():
        setattr(service_item, field, value)
    if created or changed:
        service_item.save()
    _log_change(by=by, obj=service_item, created=created, changed=changed)
    return service_item
