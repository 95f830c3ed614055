"""Reads of the vouchers app, and the checks a scan must pass (shared by verify and redeem)."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.i18n import name_in_language
from config.roles import BUREAU, FINANCE, OFFICER, PROVIDER_ROLES, WORKER, roles_of
from eligibility.selectors import sees_whole_city
from eligibility.selectors import visible_to as seniors_visible_to
from providers.models import Contract, Provider
from providers.selectors import ancestor_paths, contract_items_for
from vouchers import ledger_sql, tokens
from vouchers.errors import VoucherError
from vouchers.models import ClosedMonth, Dispute, Redemption, Visit, Voucher, VoucherReissue


def parse_scanned_token(scanned: str) -> tokens.ParsedToken:
    parsed = tokens.parse_token(scanned)
    if parsed is None:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    return parsed


def check_token_matches(*, voucher: Voucher, parsed: tokens.ParsedToken) -> None:
    """A genuine signature over another month than the voucher's can only come from a misused
    key: refuse it as not a valid code, like a forgery."""
    if parsed.period is not None and parsed.period != voucher.period:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    if parsed.period is None and not tokens.legacy_code_accepted(voucher.period):
        # An earlier-format code for a voucher issued after the switch: never printed, so forged.
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))


def check_voucher_usable(
    *, voucher: Voucher, token_version: int, today: dt.date, as_of: dt.datetime | None = None
) -> None:
    """Refuse a voucher that cannot be used today: revoked, not yet valid, expired.

    `as_of` is the time of a service scanned offline and sent later (`today` its date): a code
    replaced or a voucher revoked after that moment still counts for it."""
    check_code_current(voucher=voucher, token_version=token_version, as_of=as_of)
    if today < voucher.valid_from:
        raise VoucherError(
            "voucher_not_yet_valid",
            _("This voucher is valid from %(date)s."),
            date=voucher.valid_from.isoformat(),
        )
    if (voucher.status == Voucher.Status.EXPIRED and as_of is None) or today > voucher.valid_until:
        raise VoucherError(
            "voucher_expired", _("This voucher expired on %(date)s."), date=voucher.valid_until.isoformat()
        )


def month_is_closed(*, month: dt.date) -> bool:
    return ClosedMonth.objects.filter(month=month).exists()


def check_month_open(*, month: dt.date) -> None:
    if month_is_closed(month=month):
        raise VoucherError(
            "period_closed", _("%(month)s has been settled; it can no longer change."), month=f"{month:%Y-%m}"
        )


def items_available(*, voucher: Voucher, provider, today: dt.date) -> list:
    """The provider's contract items (one per service item) whose contract covers the senior."""
    covering = contract_items_for(provider=provider, on=today).filter(
        contract__service_area__path__in=ancestor_paths(voucher.senior.community.path)
    )
    return _newest_per_service_item(covering)


def _newest_per_service_item(items) -> list:
    """One contract item per service item: the first of each, i.e. its newest contract's
    (`contract_items_for` orders them so), in the order of the service items."""
    chosen = {}
    for item in items:
        chosen.setdefault(item.service_item.code, item)
    return list(chosen.values())


def contract_item_for(*, voucher: Voucher, provider, service_item_code: str, today: dt.date):
    """The contract item to price a service with, or a refusal that says why there is none.

    One query on the hot path: the service area is matched against the community's ancestors.
    """
    offered = contract_items_for(provider=provider, on=today).filter(service_item__code=service_item_code)
    item = offered.filter(
        contract__service_area__path__in=ancestor_paths(voucher.senior.community.path)
    ).first()
    if item is not None:
        return item
    if not offered.exists():
        raise VoucherError(
            "not_contracted",
            _("Your organisation has no contract for this service (%(item)s) today."),
            item=service_item_code,
        )
    raise VoucherError(
        "outside_service_area", _("This senior lives outside your organisation's contracted service area.")
    )


@dataclass(frozen=True)
class ScanView:
    """What a scanner may see of a voucher: no ID number, a masked name."""

    voucher: Voucher
    masked_name: str
    items: list


# What a scan shows and checks of a voucher: no more (a scan happens at every door, all day).
SCAN_FIELDS = [
    "period",
    "status",
    "token_version",
    "valid_from",
    "valid_until",
    "balance",
    "balance_currency",
    "face_value",
    "face_value_currency",
    "government_share_rate",
    "tier_code",
    "revoked_at",
    "tier__name",
    "senior__name",
    "senior__community__path",
]


def voucher_for_scan(*, scanned: str, provider, today: dt.date) -> ScanView:
    parsed = parse_scanned_token(scanned)
    on_postgresql = connection.vendor == "postgresql"
    if on_postgresql:  # the scanner's hot path in two plain statements (vouchers.ledger_sql)
        voucher = ledger_sql.voucher_for_scan(parsed.voucher_id)
    else:
        voucher = (
            Voucher.objects.select_related("senior__community", "tier")
            .only(*SCAN_FIELDS)
            .filter(pk=parsed.voucher_id)
            .order_by()
            .first()
        )
    if voucher is None:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    check_token_matches(voucher=voucher, parsed=parsed)
    check_voucher_usable(voucher=voucher, token_version=parsed.version, today=today)
    if on_postgresql:
        paths = ancestor_paths(voucher.senior.community.path)
        items = [
            item
            for item, _closed in ledger_sql.contract_items(provider_id=provider.pk, day=today, paths=paths)
        ]
    else:
        items = items_available(voucher=voucher, provider=provider, today=today)
    if not items:
        raise VoucherError(
            "outside_service_area",
            _("This senior lives outside your organisation's contracted service area."),
        )
    return ScanView(voucher=voucher, masked_name=voucher.senior.masked_name, items=items)


def recent_redemptions_for_device(*, device, limit: int = 50):
    return (
        Redemption.objects.select_related("service_item", "voucher__senior", "void")
        .filter(device=device)
        .order_by("-recorded_at", "-id")[:limit]
    )


def provider_items(*, provider, today: dt.date) -> list:
    """The provider's contract items today, one per service item (its newest contract's): what
    a scanner offers while offline, when it cannot ask which ones cover the senior."""
    return _newest_per_service_item(contract_items_for(provider=provider, on=today))


def visits_of_staff(*, staff, status: str | None = None, limit: int = 50):
    """A staff member's visits (check-in and check-out), newest first."""
    visits = Visit.objects.select_related("service_item", "voucher__senior").filter(staff=staff)
    if status:
        visits = visits.filter(status=status)
    return visits.order_by("-started_at", "-id")[:limit]


def voucher_for_senior_page(*, voucher_id: int, period: dt.date | None = None) -> Voucher | None:
    """The voucher a genuine token names (None if there is none, or if the token was made for
    another month: see `check_token_matches`)."""
    voucher = Voucher.objects.select_related("senior__community", "tier").filter(pk=voucher_id).first()
    if voucher is not None and period is not None and voucher.period != period:
        return None
    if voucher is not None and period is None and not tokens.legacy_code_accepted(voucher.period):
        return None  # an earlier-format code for a later voucher: see check_token_matches
    return voucher


@dataclass(frozen=True)
class ProviderContact:
    name: str
    phone: str


@dataclass(frozen=True)
class VoucherContacts:
    """Whom a senior calls about their voucher: printed on the card, shown on their page."""

    community: str
    worker_name: str
    worker_phone: str
    providers: list[ProviderContact]


def contacts_for_community(*, community, on: dt.date) -> VoucherContacts:
    """The community's contact and the hotlines of the active providers whose contracts active
    on `on` cover it (a subdistrict's contract covers its communities), by provider code."""
    providers = (
        Provider.objects.filter(
            is_active=True,
            contracts__status=Contract.Status.ACTIVE,
            contracts__starts_on__lte=on,
            contracts__ends_on__gte=on,
            contracts__service_area__path__in=ancestor_paths(community.path),
        )
        .distinct()
        .order_by("code")
    )
    return VoucherContacts(
        community=name_in_language(community),
        worker_name=community.contact_name,
        worker_phone=community.contact_phone,
        providers=[
            ProviderContact(name=name_in_language(provider), phone=provider.contact_phone)
            for provider in providers
        ],
    )


def voucher_contacts(voucher: Voucher) -> VoucherContacts:
    """`contacts_for_community` for the voucher's senior, in the voucher's month (its last day
    once the month is over, its first before it starts)."""
    today = timezone.localdate()
    on = min(max(today, voucher.valid_from), voucher.valid_until)
    return contacts_for_community(community=voucher.senior.community, on=on)


# --- Who may see what (DESIGN.md §8) --------------------------------------------------------------


def visible_to(user) -> QuerySet[Voucher]:
    """The vouchers a user may see: the city for superusers, finance and the city-wide bureau; a
    worker's, officer's or part-city bureau administrator's seniors' through the registry's scope;
    none for provider roles (a scanner reads one voucher at a time through its code)."""
    if not user.is_authenticated:
        return Voucher.objects.none()
    if _sees_every_voucher(user):
        return Voucher.objects.all()
    return Voucher.objects.filter(senior__in=seniors_visible_to(user))


def _sees_every_voucher(user) -> bool:
    """Superusers, finance, and a bureau administrator of the whole city: a bureau administrator
    given part of the city sees that part's vouchers, as in the registry."""
    return user.is_superuser or FINANCE in roles_of(user) or sees_whole_city(user)


def redemptions_visible_to(user) -> QuerySet[Redemption]:
    """Redemptions a user may see: the city for superusers, bureau and finance; their own
    provider's for provider managers and staff; their seniors' for workers and officers."""
    return _ledger_visible_to(user, Redemption)


def visits_visible_to(user) -> QuerySet[Visit]:
    """Check-ins and check-outs, seen as the redemptions are (`redemptions_visible_to`)."""
    return _ledger_visible_to(user, Visit)


def _ledger_visible_to(user, model):
    if not user.is_authenticated:
        return model.objects.none()
    if _sees_every_voucher(user):
        return model.objects.all()
    if PROVIDER_ROLES & set(roles_of(user)):
        staff = getattr(user, "staff_member", None)
        return model.objects.filter(provider_id=staff.provider_id) if staff else model.objects.none()
    return model.objects.filter(voucher__senior__in=seniors_visible_to(user))


def vouchers_of_senior(*, senior, limit: int) -> list[Voucher]:
    """A senior's latest vouchers, newest month first (the registry page's panel)."""
    return list(Voucher.objects.select_related("tier").filter(senior=senior).order_by("-period")[:limit])


def redemptions_of_senior(*, senior, limit: int) -> list[Redemption]:
    """A senior's latest services, voided ones too (marked by their void), newest first."""
    return list(
        Redemption.objects.select_related("service_item", "provider", "void")
        .filter(voucher__senior=senior)
        .order_by("-served_at", "-id")[:limit]
    )


@dataclass(frozen=True)
class Revocation:
    """What a scanner must refuse offline: the codes of `voucher` below `valid_version`, or all
    of its codes when `revoked`."""

    voucher_id: int
    valid_version: int
    revoked: bool
    at: dt.datetime


REVOCATIONS_PAGE = 5000


def revocations_since(
    *, since: dt.datetime | None, today: dt.date, limit: int = REVOCATIONS_PAGE
) -> list[Revocation]:
    """Reissued and revoked vouchers since `since` (all when None), oldest first, only those
    whose month is not over (an expired voucher is refused anyway); at most `limit`, so a
    scanner pages on with the last `at`."""
    reissues = VoucherReissue.objects.filter(voucher__valid_until__gte=today)
    revoked = Voucher.objects.filter(revoked_at__isnull=False, valid_until__gte=today)
    if since is not None:
        # From `since` itself on: a row at the page's last instant comes again rather than never
        # (applying a revocation twice changes nothing).
        reissues = reissues.filter(reissued_at__gte=since)
        revoked = revoked.filter(revoked_at__gte=since)
    rows = [
        Revocation(voucher_id=r.voucher_id, valid_version=r.new_version, revoked=False, at=r.reissued_at)
        for r in reissues.order_by("reissued_at", "id")[:limit]
    ] + [
        Revocation(voucher_id=v.pk, valid_version=v.token_version, revoked=True, at=v.revoked_at)
        for v in revoked.order_by("revoked_at", "id")[:limit]
    ]
    return sorted(rows, key=lambda row: (row.at, row.voucher_id))[:limit]


# --- The senior's page and disputes ("this service did not happen") ------------------------------


def check_code_current(*, voucher: Voucher, token_version: int, as_of: dt.datetime | None = None) -> None:
    """Refuse `voucher_revoked` for a code replaced by a new card, or a voucher revoked whole
    (by `as_of`, when given: the time an offline scan was made)."""
    if _code_current(voucher=voucher, token_version=token_version, as_of=as_of):
        return
    raise VoucherError(
        "voucher_revoked",
        _("This voucher code has been revoked; ask the community worker for the new one."),
    )


def _code_current(*, voucher: Voucher, token_version: int, as_of: dt.datetime | None) -> bool:
    if as_of is None:
        return voucher.status != Voucher.Status.REVOKED and token_version == voucher.token_version
    if voucher.status == Voucher.Status.REVOKED and (
        voucher.revoked_at is None or voucher.revoked_at <= as_of
    ):
        return False
    if token_version == voucher.token_version:
        return True
    # An older card scanned offline before it was replaced: the reissue that retired its version
    # came after the scan.
    return (
        token_version < voucher.token_version
        and VoucherReissue.objects.filter(
            voucher=voucher, old_version=token_version, reissued_at__gt=as_of
        ).exists()
    )


def _services_with_disputes(voucher: Voucher) -> QuerySet[Redemption]:
    # `has_open_dispute` in the same query: "reported" instead of the button, no query per service
    open_dispute = Dispute.objects.filter(redemption=OuterRef("pk"), status=Dispute.Status.OPEN)
    return (
        Redemption.objects.select_related("service_item", "provider")
        .filter(voucher=voucher, void__isnull=True)
        .annotate(has_open_dispute=Exists(open_dispute))
    )


def services_for_senior_page(*, voucher: Voucher, limit: int = 20) -> list[Redemption]:
    """The voucher's services that still count (not voided), most recent first, each with
    `has_open_dispute`."""
    return list(_services_with_disputes(voucher).order_by("-served_at", "-id")[:limit])


def service_on_voucher(*, voucher: Voucher, redemption_id) -> Redemption | None:
    """One service of the voucher that still counts (not voided), with `has_open_dispute`, for
    the dispute's confirmation; None for anything else (another voucher's, voided, not a number)."""
    try:
        pk = int(redemption_id)
    except (TypeError, ValueError):
        return None
    if not 0 < pk < 2**63:
        return None
    return _services_with_disputes(voucher).filter(pk=pk).first()


def disputes_visible_to(user) -> QuerySet[Dispute]:
    """Disputes a user may see: the city for superusers and the bureau; their seniors' for
    workers and officers; none for anyone else (a provider hears of a dispute from the bureau,
    once it has been checked with the senior)."""
    if not user.is_authenticated:
        return Dispute.objects.none()
    user_roles = set(roles_of(user))
    if user.is_superuser or BUREAU in user_roles:
        return Dispute.objects.all()
    if {WORKER, OFFICER} & user_roles:
        return Dispute.objects.filter(redemption__voucher__senior__in=seniors_visible_to(user))
    return Dispute.objects.none()


# --- Printed cards (vouchers/cards.py) ------------------------------------------------------------


def vouchers_to_print(*, period: dt.date, community, user=None) -> QuerySet[Voucher]:
    """The ACTIVE vouchers of `period` of `community`'s seniors that `user` may see (all of them
    for a script: `user` None), with the senior, community and tier of each in the same query.
    In the registry list's order, by the name's pinyin initials then registration, so a worker
    finds each card as they go down the list."""
    vouchers = Voucher.objects.all() if user is None else visible_to(user)
    return (
        vouchers.filter(period=period, status=Voucher.Status.ACTIVE, senior__community=community)
        .select_related("senior__community", "tier")
        .order_by("senior__name_initials", "senior_id")
    )


def contacts_for_vouchers(vouchers) -> dict[int, VoucherContacts]:
    """`voucher_contacts` of each voucher by its id, asked once per community and validity window
    (a month's print run of one community asks once)."""
    asked = {}
    contacts = {}
    for voucher in vouchers:
        key = (voucher.senior.community_id, voucher.valid_from, voucher.valid_until)
        if key not in asked:
            asked[key] = voucher_contacts(voucher)
        contacts[voucher.pk] = asked[key]
    return contacts


def voucher_to_print(*, voucher_id: int, user) -> Voucher | None:
    """One voucher `user` may see, with what its card shows (one card, e.g. after a reissue);
    None when there is no such voucher for them."""
    return visible_to(user).select_related("senior__community", "tier").filter(pk=voucher_id).first()
