"""Reads of the providers app: which contract item a provider may deliver to whom, when."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import Count, DecimalField, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from djmoney.money import Money

from config.roles import BUREAU, FINANCE, PROVIDER, PROVIDER_ROLES, roles_of
from eligibility.models import Region
from eligibility.selectors import sees_whole_city
from providers.models import Contract, ContractItem, Device, Provider, ServiceItem, StaffMember


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


# --- A provider manager's team: staff, devices, the month's redemptions -----------------------------


def may_see_teams(user) -> bool:
    """Who may open the team pages at all: provider managers, the bureau and superusers (the
    permission to read staff); service staff, finance and the registry roles may not."""
    return user.is_authenticated and user.has_perm("providers.view_staffmember")


def teams_run_by(user) -> QuerySet[Provider]:
    """Providers whose team a user may change (add staff, deactivate them, revoke devices): any
    for superusers; their own for an active provider manager (role `provider`); none otherwise."""
    if not user.is_authenticated:
        return Provider.objects.none()
    if user.is_superuser:
        return Provider.objects.all()
    staff = getattr(user, "staff_member", None)
    if PROVIDER in roles_of(user) and staff is not None and staff.is_active:
        return Provider.objects.filter(pk=staff.provider_id)
    return Provider.objects.none()


def teams_visible_to(user) -> QuerySet[Provider]:
    """Providers whose team pages a user may read: every one for superusers and the city-wide
    bureau; their own for a provider manager. Service staff (role `staff`) see no team page,
    their own provider's included."""
    if not may_see_teams(user):
        return Provider.objects.none()
    if sees_whole_city(user):
        return Provider.objects.all()
    return teams_run_by(user)


def runs_team(user, *, provider, permission: str) -> bool:
    """Whether `user` may make this change (`permission`, e.g. "providers.change_device") to
    this provider's team."""
    return user.has_perm(permission) and teams_run_by(user).filter(pk=provider.pk).exists()


def staff_of(*, provider) -> QuerySet[StaffMember]:
    """The provider's staff, active first, with what the staff page shows, in one query:
    `devices_signed_in` (not revoked), `last_scan` (the latest use of any of their devices) and
    `is_manager` (in the provider managers' group)."""
    managers = get_user_model().groups.through.objects.filter(
        user_id=OuterRef("user_id"), group__name=PROVIDER
    )
    return (
        StaffMember.objects.filter(provider=provider)
        .select_related("user")
        .annotate(
            devices_signed_in=Count("devices", filter=Q(devices__revoked_at__isnull=True)),
            last_scan=Max("devices__last_used_at"),
            is_manager=Exists(managers),
        )
        .order_by("-is_active", "-user__is_active", "employee_number", "pk")
    )


def devices_of(*, provider) -> QuerySet[Device]:
    """Every device of the provider's staff, the working ones first, newest first."""
    return (
        Device.objects.filter(staff__provider=provider)
        .select_related("staff")
        .order_by(F("revoked_at").desc(nulls_first=True), "-created_at", "-pk")
    )


def redemptions_of_month(*, provider, month: dt.date) -> QuerySet:
    """The provider's redemptions of a service month, voided ones too (their `void` joined),
    newest first. Only the senior's name and community are read, never the ID-card number."""
    return (
        provider.redemptions.filter(service_month=month)
        .select_related("service_item", "staff", "void", "voucher__senior__community")
        .only(
            *("served_at", "quantity", "tier_code", "provider", "service_item", "staff", "voucher"),
            *("amount", "amount_currency", "government_share", "government_share_currency"),
            *("senior_share", "senior_share_currency"),
            *("service_item__name", "service_item__name_en", "service_item__unit"),
            *("staff__display_name", "staff__employee_number", "void__voided_at", "void__reason"),
            *("voucher__senior", "voucher__senior__name", "voucher__senior__community"),
            "voucher__senior__community__name",
        )
        .order_by("-served_at", "-pk")
    )


@dataclass(frozen=True)
class MonthTotals:
    """What a provider's month adds up to: voided redemptions count apart and add nothing."""

    count: int
    amount: Money
    government_share: Money
    senior_share: Money
    voided: int


def month_totals(*, provider, month: dt.date) -> MonthTotals:
    """One aggregate query over the provider's redemptions of the month."""
    counted = Q(void__isnull=True)
    zero = Value(Decimal("0.00"), output_field=DecimalField(max_digits=14, decimal_places=2))
    row = provider.redemptions.filter(service_month=month).aggregate(
        count=Count("pk", filter=counted),
        voided=Count("pk", filter=~counted),
        **{
            field: Coalesce(Sum(field, filter=counted), zero, output_field=zero.output_field)
            for field in ("amount", "government_share", "senior_share")
        },
    )
    money = {field: Money(row[field], "CNY") for field in ("amount", "government_share", "senior_share")}
    return MonthTotals(count=row["count"], voided=row["voided"], **money)


def months_with_redemptions(*, provider, until: dt.date, at_least: int = 12) -> list[dt.date]:
    """The months the month picker offers, newest first: `until` (this month) and the
    `at_least - 1` before it, and any older month in which the provider recorded services."""
    months = {until}
    month = until
    for _ in range(at_least - 1):
        month = (month - dt.timedelta(days=1)).replace(day=1)
        months.add(month)
    months.update(
        provider.redemptions.filter(service_month__lte=until)
        .order_by()
        .values_list("service_month", flat=True)
        .distinct()
    )
    return sorted(months, reverse=True)


# --- The bureau's providers and contracts pages (/providers/) ------------------------------------


def may_read_providers(user) -> bool:
    """The providers list and every provider's page (contracts, prices, areas): superusers, the
    bureau whatever its region, and finance, who settle with them. Read only, for all but
    `may_manage_providers`; a provider manager sees their own provider's page alone."""
    return (
        user.is_authenticated
        and (user.is_superuser or bool({BUREAU, FINANCE} & set(roles_of(user))))
        and user.has_perm("providers.view_provider")
    )


def may_manage_providers(user) -> bool:
    """Creating, changing, suspending providers, their contracts and the service catalogue: the
    city-wide bureau and superusers, as the accounts page."""
    return user.is_authenticated and sees_whole_city(user) and user.has_perm("providers.change_provider")


def provider_managed_by(user) -> Provider | None:
    """The provider an active provider manager (role `provider`) works for; None for anyone else."""
    if not user.is_authenticated or PROVIDER not in roles_of(user):
        return None
    staff = StaffMember.objects.select_related("provider").filter(user=user, is_active=True).first()
    return staff.provider if staff else None


def provider_pages_visible_to(user) -> QuerySet[Provider]:
    """Providers whose page (details, contracts, prices) a user may open: all for the readers of
    `may_read_providers`; their own for a provider manager; none for staff and registry roles."""
    if may_read_providers(user):
        return Provider.objects.all()
    provider = provider_managed_by(user)
    if provider is not None and user.has_perm("providers.view_contract"):
        return Provider.objects.filter(pk=provider.pk)
    return Provider.objects.none()


def providers_listed(*, on: dt.date, query: str = "") -> QuerySet[Provider]:
    """Providers (active first) by name, English name or code, each with `contracts_in_force`
    (active contracts whose period holds `on`), in one query."""
    in_force = Q(
        contracts__status=Contract.Status.ACTIVE, contracts__starts_on__lte=on, contracts__ends_on__gte=on
    )
    providers = Provider.objects.annotate(
        contracts_in_force=Count("contracts", filter=in_force, distinct=True)
    )
    query = " ".join((query or "").split())
    if query:
        providers = providers.filter(
            Q(name__icontains=query) | Q(name_en__icontains=query) | Q(code__icontains=query)
        )
    return providers.order_by("-is_active", "code")


def provider_contracts(*, provider) -> QuerySet[Contract]:
    """A provider's contracts, newest first, with their area and priced items (three queries)."""
    return (
        Contract.objects.filter(provider=provider)
        .order_by("-starts_on", "-pk")
        .prefetch_related(
            Prefetch("service_area", queryset=Region.objects.order_by("path")),
            Prefetch(
                "items",
                queryset=ContractItem.objects.select_related("service_item").order_by("service_item__code"),
            ),
        )
    )


def region_tree() -> list[dict]:
    """Every region as districts → subdistricts → communities (one query), for the contract
    form's area: [{"region", "children": [{"region", "children": [{"region"}]}]}]."""
    nodes: dict[int, dict] = {}
    roots: list[dict] = []
    for region in Region.objects.order_by("path"):
        node = nodes[region.pk] = {"region": region, "children": []}
        parent = nodes.get(region.parent_id)
        (parent["children"] if parent else roots).append(node)
    return roots


@dataclass(frozen=True)
class ContractOverlap:
    contract: Contract  # the other contract
    service_item: object
    region: Region  # where both cover the item: the more local of the two regions


def overlapping_contract(
    *, provider, starts_on: dt.date, ends_on: dt.date, service_item_ids, regions, exclude_pk=None
) -> ContractOverlap | None:
    """Another active contract of `provider` whose period meets [starts_on, ends_on] and that
    covers one of the items in the same region, or in one above or below one of `regions` (a
    subdistrict covers its communities): the first such, or None."""
    item_ids = set(service_item_ids)
    others = (
        Contract.objects.filter(
            provider=provider,
            status=Contract.Status.ACTIVE,
            starts_on__lte=ends_on,
            ends_on__gte=starts_on,
            items__service_item_id__in=item_ids,
        )
        .exclude(pk=exclude_pk)
        .distinct()
        .order_by("starts_on", "pk")
        .prefetch_related(
            "service_area", Prefetch("items", queryset=ContractItem.objects.select_related("service_item"))
        )
    )
    for other in others:
        shared = sorted(
            (i.service_item for i in other.items.all() if i.service_item_id in item_ids), key=lambda s: s.code
        )
        for mine in regions:
            for theirs in other.service_area.all():
                if mine.path.startswith(theirs.path) or theirs.path.startswith(mine.path):
                    inner = mine if len(mine.path) >= len(theirs.path) else theirs
                    return ContractOverlap(contract=other, service_item=shared[0], region=inner)
    return None


def service_catalogue() -> QuerySet[ServiceItem]:
    """The service items, active first, by category and code."""
    return ServiceItem.objects.order_by("-is_active", "category", "code")
