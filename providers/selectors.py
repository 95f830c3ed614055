"""Reads of the providers app: which contract item a provider may deliver to whom, when."""

import datetime as dt

from django.contrib.auth import get_user_model
from django.db.models import QuerySet

from config.roles import BUREAU, FINANCE, PROVIDER_ROLES, roles_of
from eligibility.selectors import sees_whole_city
from providers.models import Contract, ContractItem, Provider


def contract_items_for(*, provider, on: dt.date):
    """The provider's priced items under contracts active on `on`, newest contract first."""
    return (
        ContractItem.objects.select_related("service_item", "contract")
        .filter(
            contract__provider=provider,
            contract__status=Contract.Status.ACTIVE,
            contract__starts_on__lte=on,
            contract__ends_on__gte=on,
            service_item__is_active=True,
        )
        .order_by("service_item__code", "-contract__starts_on", "-contract_id")
    )


def ancestor_paths(region_path: str) -> list[str]:
    """The paths of a region and of every region above it: "a/b/c/" -> ["a/", "a/b/", "a/b/c/"].

    An area covers a community exactly when the area's path is one of these.
    """
    parts = region_path.strip("/").split("/")
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def visible_to(user) -> QuerySet[Provider]:
    """Providers a user may see: all for superusers, the bureau and finance; their own for a
    provider's manager and staff; none for the registry roles (they see providers' names only on
    the services recorded for their seniors)."""
    if not user.is_authenticated:
        return Provider.objects.none()
    user_roles = set(roles_of(user))
    if user.is_superuser or {BUREAU, FINANCE} & user_roles:
        return Provider.objects.all()
    staff = getattr(user, "staff_member", None)
    if PROVIDER_ROLES & user_roles and staff is not None:
        return Provider.objects.filter(pk=staff.provider_id)
    return Provider.objects.none()


def may_manage_accounts(user) -> bool:
    """The accounts page is the city-wide bureau's (and a superuser's): it hands out roles and
    scopes anywhere, so a bureau administrator given only part of the city may not use it."""
    return user.is_authenticated and user.has_perm("auth.change_user") and sees_whole_city(user)


def accounts_visible_to(user) -> QuerySet:
    """The accounts a user may manage, with what the page shows of each (no N+1)."""
    User = get_user_model()
    if not may_manage_accounts(user):
        return User.objects.none()
    return (
        User.objects.filter(is_superuser=False)
        .select_related("region_scope__region", "staff_member__provider")
        .prefetch_related("groups")
        .order_by("username")
    )
