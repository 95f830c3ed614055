"""Writes of the vouchers app: issuance, redemption and voids.

Redemption follows DESIGN.md §3: verify the token, lock the voucher row, re-check everything
under the lock, price with `billing.pricing`, insert the redemption and debit the balance in the
same transaction.
"""

import datetime as dt
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from billing import pricing
from config.months import SHANGHAI, last_day, local_date, month_of, next_month
from config.resilience import cache_call
from eligibility.errors import EligibilityError
from eligibility.models import Determination, Policy, Senior, Tier
from eligibility.normalise import normalise_phone
from eligibility.services import EVALUATION_LOCK
from providers.selectors import ancestor_paths
from vouchers import ledger_sql, tokens
from vouchers.errors import VoucherError
from vouchers.models import (
    Dispute,
    IssuanceRun,
    Redemption,
    RedemptionVoid,
    ScanAttempt,
    Visit,
    Voucher,
    VoucherReissue,
)
from vouchers.month_locks import hold_month_for_write
from vouchers.selectors import (
    check_code_current,
    check_month_open,
    check_token_matches,
    check_voucher_usable,
    contract_item_for,
    month_is_closed,
    parse_scanned_token,
)

CURRENCY = "CNY"
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,64}$")
MAX_QUANTITY = Decimal("99.99")


@dataclass(frozen=True)
class IssueResult:
    period: dt.date
    issued: int
    expired: int
    incremental: bool = False
    carried_over: int = 0


@transaction.atomic
def issue_vouchers(
    *, period: dt.date, now: dt.datetime | None = None, by=None, job: str = "", full: bool = False
) -> IssueResult:
    """Issue `period`'s voucher to every active senior with a current determination with a tier.

    One INSERT … SELECT; the unique (senior, month) constraint makes it idempotent. Face value and
    share rate are snapshots of the tier's terms, so a senior whose tier changes mid-month keeps
    this month's voucher until the next month's issuance. A senior who died or moved out has no
    current determination (leaving retires it) and gets nothing.

    A re-run of the same month reads only the determinations made since the last run (their ids
    are above its mark): registering a senior, an edit or an evaluation in between is what can
    add a voucher, and the evaluations' advisory lock, held here, keeps them from committing
    mid-run. `full=True` reads every determination again. Where the policy carries unused balance
    over, `_carry_over` adds last month's. Each run leaves an IssuanceRun (who or which job, when,
    how many). Vouchers whose validity ended before today are expired in the
    same transaction (by date, so issuing next month early never cuts this month short).

    Refuses `invalid_input` for a period more than one month ahead (a typo must not issue a
    far-future month) or already over (its services could only be backdated).
    """
    if period.day != 1:
        raise VoucherError("invalid_input", _("A voucher period is a month (its first day)."))
    now = now or timezone.now()
    if period > next_month(month_of(now)):
        raise VoucherError(
            "invalid_input",
            _("Vouchers can be issued at most one month ahead, not for %(month)s."),
            month=f"{period:%Y-%m}",
        )
    if period < month_of(now):
        # A past month's services are over: a voucher for it could only be spent by backdating.
        raise VoucherError(
            "invalid_input",
            _("%(month)s is over: vouchers are issued for this month or the next."),
            month=f"{period:%Y-%m}",
        )
    started_at = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Determinations stand still until this commits, so their highest id is a safe mark.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [EVALUATION_LOCK])
    previous = (
        None if full else IssuanceRun.objects.filter(period=period).order_by("-last_determination_id").first()
    )
    since = previous.last_determination_id if previous else 0
    # The month's first run needs no conflict handling: nothing else writes vouchers, and on
    # PostgreSQL another issuance waits for the lock above (a stray conflict fails the whole run).
    first_of_month = not Voucher.objects.filter(status__in=Voucher.Status.values, period=period).exists()
    mark = Determination.objects.aggregate(mark=Max("id"))["mark"] or 0
    voucher, determination, senior = Voucher._meta, Determination._meta, Senior._meta
    tier = Determination._meta.get_field("tier").related_model._meta
    sql = f"""
        INSERT INTO {voucher.db_table} (
            senior_id, determination_id, period, tier_id, tier_code, government_share_rate,
            face_value, face_value_currency, balance, balance_currency,
            valid_from, valid_until, status, token_version, issued_at
        )
        SELECT d.senior_id, d.id, %s, t.id, t.code, t.government_share_rate,
               t.monthly_face_value, %s, t.monthly_face_value, %s,
               %s, %s, %s, 1, %s
        FROM {determination.db_table} d
        JOIN {tier.db_table} t ON t.id = d.tier_id
        JOIN {senior.db_table} s ON s.id = d.senior_id
        WHERE d.is_current = %s AND s.status = %s AND d.id > %s AND d.id <= %s
        {"" if first_of_month else "ON CONFLICT (senior_id, period) DO NOTHING"}
    """  # noqa: S608 - table names come from model metadata, values are parameters
    ops = connection.ops
    params = [
        ops.adapt_datefield_value(period),
        CURRENCY,
        CURRENCY,
        ops.adapt_datefield_value(period),
        ops.adapt_datefield_value(last_day(period)),
        Voucher.Status.ACTIVE,
        ops.adapt_datetimefield_value(now),
        True,
        Senior.Status.ACTIVE,
        since,
        mark,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        issued = max(cursor.rowcount, 0)
    today = local_date(now)
    carried = 0
    if Policy.objects.filter(carry_over_unused=True).exclude(status=Policy.Status.DRAFT).exists():
        # This month's vouchers too, when next month is being issued early: a run missed on the
        # 1st must not leave them without last month's balance.
        months = sorted({today.replace(day=1), period})
        carried = sum(_carry_over(period=month, today=today, now=now) for month in months)
    expired = Voucher.objects.filter(
        status=Voucher.Status.ACTIVE, period__lt=today.replace(day=1), valid_until__lt=today
    ).update(status=Voucher.Status.EXPIRED)
    IssuanceRun.objects.create(
        period=period,
        started_at=started_at,
        finished_at=timezone.now(),
        issued=issued,
        expired=expired,
        carried_over=carried,
        last_determination_id=mark,
        incremental=bool(previous),
        run_by=by,
        job=job[:60],
    )
    return IssueResult(
        period=period, issued=issued, expired=expired, incremental=bool(previous), carried_over=carried
    )


def _carry_over(*, period: dt.date, today: dt.date, now: dt.datetime) -> int:
    """Where the policy of a voucher's tier carries unused balance over (default off): add what
    is left of last month's face value to `period`'s voucher, once last month is over (its
    balance can no longer change). Never more than one month's face value, so nothing snowballs;
    a revoked voucher passes nothing on. One UPDATE, run (by `issue_vouchers`) only when some
    published policy has the option; a voucher issued before last month ended gets it at the next run. Returns how many
    vouchers were given something (a voucher with nothing to carry is left unmarked)."""
    voucher, tier, policy = Voucher._meta.db_table, Tier._meta.db_table, Policy._meta.db_table
    sql = f"""
        UPDATE {voucher} SET carried_over = c.amount, balance = {voucher}.balance + c.amount, carried_over_at = %s
        FROM (
            SELECT v.id AS voucher_id,
                   CASE WHEN prev.balance < prev.face_value THEN prev.balance ELSE prev.face_value END AS amount
            FROM {voucher} v
            JOIN {voucher} prev ON prev.senior_id = v.senior_id AND prev.period = %s
            JOIN {tier} t ON t.id = v.tier_id
            JOIN {policy} p ON p.id = t.policy_id
            WHERE v.period = %s AND v.carried_over_at IS NULL AND v.status = %s
              AND prev.status <> %s AND prev.valid_until < %s AND p.carry_over_unused
              AND prev.balance > 0 AND prev.face_value > 0
        ) c
        WHERE {voucher}.id = c.voucher_id
    """  # noqa: S608 - table names come from model metadata, values are parameters
    ops = connection.ops
    previous_month = (period - dt.timedelta(days=1)).replace(day=1)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                ops.adapt_datetimefield_value(now),
                ops.adapt_datefield_value(previous_month),
                ops.adapt_datefield_value(period),
                Voucher.Status.ACTIVE,
                Voucher.Status.REVOKED,
                ops.adapt_datefield_value(today),
            ],
        )
        return max(cursor.rowcount, 0)


@dataclass(frozen=True)
class Location:
    """Where the phone said it was when the card was scanned (when it gave one)."""

    latitude: Decimal | None
    longitude: Decimal | None
    accuracy: int | None = None


NOWHERE = Location(latitude=None, longitude=None)  # the phone gave no position


@dataclass(frozen=True)
class RedeemResult:
    redemption: Redemption
    replayed: bool

    @property
    def remaining_balance(self) -> Money:
        return self.redemption.voucher.balance


@dataclass(frozen=True)
class VisitResult:
    visit: Visit
    replayed: bool


def _parse_quantity(quantity) -> Decimal:
    value = pricing.parse_hundredths(quantity, maximum=MAX_QUANTITY)
    if value is None:
        raise VoucherError(
            "invalid_input",
            _("The quantity must be a number greater than 0 and at most 99.99, in steps of 0.01."),
            field="quantity",
        )
    return value


def _check_idempotency_key(key: str) -> None:
    if not IDEMPOTENCY_KEY.match(key or ""):
        raise VoucherError(
            "invalid_input",
            _("The idempotency key must be 8–64 letters, digits or the characters _ . : -"),
            field="idempotency_key",
        )


def _check_staff(staff) -> None:
    if staff is None or not staff.is_active or not staff.provider.is_active:
        raise VoucherError("not_permitted", _("This account may not record services."))


def _key_scope(*, staff, device) -> dict:
    """Idempotency keys are the staff member's own, on every phone of theirs: two people who
    pick the same key record two services, and a phone signed in again (a new device) that
    resends its queue is answered from the records its first sign-in made."""
    return {"staff": staff}


def _service_time_or_replay(*, scanned_at, now, replay):
    """`service_time`, unless its refusal (a late or ahead time) is for a request already
    recorded: a repeat is answered with its record, whenever it comes (`replay()`)."""
    try:
        return service_time(scanned_at=scanned_at, now=now), None
    except VoucherError:
        found = replay()
        if found is None:
            raise
        return (None, None), found


def service_time(*, scanned_at: dt.datetime | None, now: dt.datetime) -> tuple[dt.datetime, bool]:
    """When the service happened, and whether it was scanned offline and sent later.

    Without `scanned_at` it is now. With it (an offline replay), it is the phone's time, within
    SCAN_OFFLINE_GRACE_HOURS before now and never ahead of the server's clock by more than
    SCAN_CLOCK_SKEW_SECONDS. Refuses invalid_input, offline_too_late."""
    if scanned_at is None:
        return now, False
    if timezone.is_naive(scanned_at):
        raise VoucherError("invalid_input", _("scanned_at needs a time zone offset."), field="scanned_at")
    if scanned_at > now + dt.timedelta(seconds=settings.SCAN_CLOCK_SKEW_SECONDS):
        raise VoucherError(
            "invalid_input",
            _("The phone's clock is ahead of the server's. Set the phone's date and time, then send again."),
            field="scanned_at",
        )
    hours = settings.SCAN_OFFLINE_GRACE_HOURS
    if scanned_at < now - dt.timedelta(hours=hours):
        raise VoucherError(
            "offline_too_late",
            _(
                "This service was scanned offline more than %(hours)s hours ago and can no longer be "
                "recorded. Tell your manager, who can report it to the bureau."
            ),
            hours=hours,
        )
    return min(scanned_at, now), True


def _replay(*, scope: dict, idempotency_key: str, expect: dict) -> RedeemResult | None:
    """The redemption already recorded under this key (on this device), if the request is the
    same one again; `idempotency_conflict` if the key was used for another.

    A narrow lookup on the unique (device, key) index; the full row is loaded only for a replay.
    """
    found = (
        Redemption.objects.filter(idempotency_key=idempotency_key, **scope)
        .order_by()
        .values("pk", "voucher_id", "service_item__code", "quantity")
        .first()
    )
    if found is None:
        return None
    if any(found[name] != value for name, value in expect.items()):
        raise VoucherError(
            "idempotency_conflict", _("This idempotency key was already used for a different redemption.")
        )
    existing = Redemption.objects.select_related("voucher__senior", "service_item", "void").get(
        pk=found["pk"]
    )
    return RedeemResult(redemption=existing, replayed=True)


def _on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def _lock_voucher(voucher_id: int) -> Voucher:
    """The voucher row, locked until the transaction ends, with its senior and community."""
    if _on_postgresql():
        voucher = ledger_sql.lock_voucher(voucher_id)
    else:
        voucher = (
            Voucher.objects.select_for_update(of=("self",))
            .select_related("senior__community")
            .filter(pk=voucher_id)
            .first()
        )
    if voucher is None:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    return voucher


def _check_card(*, voucher: Voucher, parsed, at: dt.datetime, offline: bool) -> None:
    """The scanned card is this voucher's, current and valid at `at` (a scan made offline: as of
    then, so a card replaced or revoked after it still counts)."""
    check_token_matches(voucher=voucher, parsed=parsed)
    check_voucher_usable(
        voucher=voucher, token_version=parsed.version, today=local_date(at), as_of=at if offline else None
    )


def _check_quantity_step(*, quantity: Decimal, item) -> None:
    # The item's billing increment is data (providers.ServiceItem.quantity_step): 1 visit, 0.5 h…
    if quantity % item.quantity_step:
        raise VoucherError(
            "invalid_input",
            _("This service is counted in steps of %(step)s %(unit)s."),
            field="quantity",
            step=f"{item.quantity_step.normalize():f}",
            unit=item.get_unit_display(),
        )


def _money_text(value: Decimal) -> str:
    return f"{value:.2f}"


def _check_not_carried_over(voucher: Voucher) -> None:
    """A service of a month that is over (scanned offline, or a visit that began then) is paid
    from that month's voucher only while its unused balance is still there: once carried over
    to the next month's voucher it must not be spent twice."""
    if voucher.period >= month_of(timezone.now()):
        return
    if Voucher.objects.filter(
        senior_id=voucher.senior_id, period=next_month(voucher.period), carried_over_at__isnull=False
    ).exists():
        raise VoucherError(
            "voucher_expired",
            _(
                "The month of this voucher (%(month)s) is over and its unused balance has moved to the "
                "next month's voucher: this service can no longer be paid from it. Tell your manager."
            ),
            month=f"{voucher.period:%Y-%m}",
        )


def _price(
    *,
    voucher: Voucher,
    unit_price: Decimal,
    quantity: Decimal,
    offline: bool,
    confirm_senior_share,
    confirm=True,
):
    """Split the price; refuse what the senior has not agreed to pay.

    Online, a service of which the senior pays a part (the tier's share, or what the balance does
    not cover) is recorded only when the scanner confirms that exact amount (`confirm_senior_share`):
    otherwise `confirmation_required`, with the quote. Offline nobody could be asked: a service
    scanned offline whose government share the balance no longer covers is refused
    `insufficient_balance` instead of leaving the senior an unexpected bill."""
    split = pricing.split_price(
        unit_price=unit_price,
        quantity=quantity,
        government_share_rate=voucher.government_share_rate,
        balance=voucher.balance.amount,
    )
    if offline:
        full = pricing.split_price(
            unit_price=unit_price,
            quantity=quantity,
            government_share_rate=voucher.government_share_rate,
            balance=split.amount,
        )
        if split.government_share < full.government_share:
            raise VoucherError(
                "insufficient_balance",
                _(
                    "The voucher's balance (¥%(balance)s) no longer covers this service scanned offline "
                    "(government share ¥%(share)s); it was not recorded. Scan again with the senior "
                    "present to agree what they pay."
                ),
                balance=_money_text(voucher.balance.amount),
                share=_money_text(full.government_share),
            )
        return split
    if confirm and split.senior_share and confirm_senior_share != split.senior_share:
        raise VoucherError(
            "confirmation_required",
            _(
                "The senior pays ¥%(senior)s of this service now (the voucher pays ¥%(government)s). Confirm, then send again."
            ),
            senior=_money_text(split.senior_share),
            government=_money_text(split.government_share),
            extra={
                "quote": {
                    "amount": _money_text(split.amount),
                    "government_share": _money_text(split.government_share),
                    "senior_share": _money_text(split.senior_share),
                    "remaining_balance": _money_text(voucher.balance.amount - split.government_share),
                    "shortfall": _money_text(
                        split.senior_share
                        - (split.amount - pricing.to_fen(split.amount * voucher.government_share_rate))
                    ),
                }
            },
        )
    return split


def _insert_redemption(
    *,
    voucher,
    contract_item,
    staff,
    device,
    quantity,
    split,
    served_at,
    offline,
    idempotency_key,
    location,
    attempt: tuple[str, str],
    started_at=None,
    ended_at=None,
) -> Redemption:
    """Insert the priced redemption, debit the voucher (under the caller's lock) and record the
    accepted scan (`attempt` = (action, what was scanned)), in the caller's transaction."""
    location = location or NOWHERE
    redemption = Redemption(
        voucher=voucher,
        provider=staff.provider,
        contract_item=contract_item,
        service_item=contract_item.service_item,
        staff=staff,
        device=device,
        quantity=quantity,
        unit_price=contract_item.unit_price,
        amount=Money(split.amount, CURRENCY),
        government_share=Money(split.government_share, CURRENCY),
        senior_share=Money(split.senior_share, CURRENCY),
        tier_code=voucher.tier_code,
        government_share_rate=voucher.government_share_rate,
        service_month=month_of(started_at or served_at),
        served_at=started_at or served_at,
        started_at=started_at,
        ended_at=ended_at,
        latitude=location.latitude,
        longitude=location.longitude,
        location_accuracy=location.accuracy,
        offline=offline,
        idempotency_key=idempotency_key,
    )
    new_balance = voucher.balance.amount - split.government_share
    if _on_postgresql():
        ledger_sql.write_redemption(
            redemption=redemption, new_balance=new_balance, attempt=attempt, now=timezone.now()
        )
        voucher.balance = Money(new_balance, CURRENCY)
    else:
        redemption.save(force_insert=True)
        if split.government_share:
            voucher.balance = Money(new_balance, CURRENCY)
            voucher.save(update_fields=["balance"])
        action, scanned = attempt
        _attempt(
            action=action, scanned=scanned, outcome="ok", staff=staff, device=device, voucher_id=voucher.pk
        )
    redemption._state.fields_cache["void"] = None  # a new redemption has no void: no query to ask
    return redemption


def _attempt(*, action: str, scanned: str, outcome: str, staff, device, voucher_id: int | None) -> None:
    if _on_postgresql():  # every verify writes one: the prepared statement of the hot path
        ledger_sql.write_attempt(
            device_id=device.pk if device else None,
            staff_id=staff.pk if staff else None,
            voucher_id=voucher_id,
            action=action,
            outcome=outcome[:40],
            scanned_hash=hashlib.sha256((scanned or "").encode()).hexdigest(),
            now=timezone.now(),
        )
        return
    ScanAttempt.objects.create(
        device=device,
        staff=staff,
        voucher_id=voucher_id,
        action=action,
        outcome=outcome[:40],
        scanned_hash=hashlib.sha256((scanned or "").encode()).hexdigest(),
    )


def redeem(
    *,
    token: str,
    service_item_code: str,
    quantity,
    idempotency_key: str,
    staff,
    device=None,
    now: dt.datetime | None = None,
    scanned_at: dt.datetime | None = None,
    location: Location | None = None,
    confirm_senior_share: Decimal | None = None,
    from_scanner: bool = False,
) -> RedeemResult:
    """Record one service against a voucher, priced as of its time, debiting the government share.

    Locks the voucher row (SELECT … FOR UPDATE) and re-checks under the lock, so the balance
    never goes below zero nor is spent twice. A repeated `idempotency_key` (per device) returns
    the first redemption. `scanned_at` marks a service scanned offline and sent later: it is
    priced and checked as of then (`service_time`). The scan's ScanAttempt is written in the same
    transaction, so nothing that can fail runs after the commit.

    `from_scanner` (the scanner API: a staff member at the senior's door) adds the two rules of
    recording with the senior present: items priced per hour are recorded by check-in and
    check-out instead (`use_check_in`), and a share the senior pays must be confirmed
    (`confirmation_required`, see `_price`). Other callers (the demo's history, scripts) record
    what was already agreed. Refuses: invalid_input,
    invalid_token, voucher_revoked, voucher_not_yet_valid, voucher_expired, period_closed,
    not_contracted, outside_service_area, not_permitted, idempotency_conflict, use_check_in,
    confirmation_required, insufficient_balance, offline_too_late.
    """
    now = now or timezone.now()
    parsed = parse_scanned_token(token)
    quantity = _parse_quantity(quantity)
    _check_idempotency_key(idempotency_key)
    _check_staff(staff)
    scope = _key_scope(staff=staff, device=device)
    expect = {"voucher_id": parsed.voucher_id, "service_item__code": service_item_code, "quantity": quantity}
    (served_at, offline), earlier = _service_time_or_replay(
        scanned_at=scanned_at,
        now=now,
        replay=lambda: _replay(scope=scope, idempotency_key=idempotency_key, expect=expect),
    )
    if earlier is not None:
        return earlier
    try:
        with transaction.atomic():
            voucher = _lock_voucher(parsed.voucher_id)
            try:
                return _redeem_locked(
                    voucher=voucher,
                    parsed=parsed,
                    service_item_code=service_item_code,
                    quantity=quantity,
                    idempotency_key=idempotency_key,
                    staff=staff,
                    device=device,
                    served_at=served_at,
                    offline=offline,
                    location=location,
                    confirm_senior_share=confirm_senior_share,
                    from_scanner=from_scanner,
                    scanned=token,
                )
            except VoucherError:
                # A repeat of a request already recorded is answered with its record, whatever
                # changed since (the month closed, the balance spent): the phone must learn that
                # it was recorded. Looked up only here, so a first request costs no query for it.
                replay = _replay(scope=scope, idempotency_key=idempotency_key, expect=expect)
                if replay is None:
                    raise
            _attempt(
                action="redeem",
                scanned=token,
                outcome="replayed",
                staff=staff,
                device=device,
                voucher_id=voucher.pk,
            )
            return replay
    except IntegrityError:
        # The key was recorded before (a repeat that passed every check, or a concurrent request
        # that committed first): the whole attempt rolled back; answer with the record.
        replay = _replay(scope=scope, idempotency_key=idempotency_key, expect=expect)
        if replay is None:
            raise
        record_scan_attempt(
            scanned=token,
            action="redeem",
            outcome="replayed",
            staff=staff,
            device=device,
            voucher_id=replay.redemption.voucher_id,
        )
        return replay


def _redeem_locked(
    *,
    voucher,
    parsed,
    service_item_code,
    quantity,
    idempotency_key,
    staff,
    device,
    served_at,
    offline,
    location,
    confirm_senior_share,
    from_scanner,
    scanned,
) -> RedeemResult:
    today = local_date(served_at)
    _check_card(voucher=voucher, parsed=parsed, at=served_at, offline=offline)
    month = month_of(served_at)
    hold_month_for_write(month)
    contract_item = _open_month_contract_item(
        voucher=voucher,
        provider=staff.provider,
        service_item_code=service_item_code,
        today=today,
        month=month,
    )
    item = contract_item.service_item
    if from_scanner and item.unit == item.Unit.HOUR:
        raise VoucherError(
            "use_check_in",
            _("%(item)s is paid by the hour: check in when you arrive and check out when you leave."),
            item=item.name,
        )
    _check_quantity_step(quantity=quantity, item=item)
    _check_not_carried_over(voucher)
    split = _price(
        voucher=voucher,
        unit_price=contract_item.unit_price.amount,
        quantity=quantity,
        offline=offline,
        confirm_senior_share=confirm_senior_share,
        confirm=from_scanner,
    )
    redemption = _insert_redemption(
        voucher=voucher,
        contract_item=contract_item,
        staff=staff,
        device=device,
        quantity=quantity,
        split=split,
        served_at=served_at,
        offline=offline,
        idempotency_key=idempotency_key,
        location=location,
        attempt=("redeem", scanned),
    )
    return RedeemResult(redemption=redemption, replayed=False)


def _open_month_contract_item(*, voucher, provider, service_item_code: str, today: dt.date, month: dt.date):
    """The contract item that prices the service, once the month is known to be open (call it
    after `hold_month_for_write`). On PostgreSQL one statement answers both; a refusal is
    explained by the same checks as everywhere (`check_month_open`, `contract_item_for`)."""
    if _on_postgresql():
        contract_item, closed = ledger_sql.contract_item_and_month_closed(
            provider_id=provider.pk,
            service_item_code=service_item_code,
            day=today,
            month=month,
            paths=ancestor_paths(voucher.senior.community.path),
        )
        if contract_item is not None and not closed:
            return contract_item
    check_month_open(month=month)
    return contract_item_for(
        voucher=voucher, provider=provider, service_item_code=service_item_code, today=today
    )


# --- Check-in and check-out (签到签退) of items priced per hour -----------------------------------


def _visit_replay(*, scope: dict, idempotency_key: str, voucher_id: int, service_item_code: str):
    visit = (
        Visit.objects.select_related("voucher__senior", "service_item")
        .filter(check_in_key=idempotency_key, **scope)
        .first()
    )
    if visit is None:
        return None
    if visit.voucher_id != voucher_id or visit.service_item.code != service_item_code:
        raise VoucherError(
            "idempotency_conflict", _("This idempotency key was already used for a different check-in.")
        )
    return VisitResult(visit=visit, replayed=True)


def check_in(
    *,
    token: str,
    service_item_code: str,
    idempotency_key: str,
    staff,
    device=None,
    now: dt.datetime | None = None,
    scanned_at: dt.datetime | None = None,
    location: Location | None = None,
) -> VisitResult:
    """Open a visit of an item priced per hour at the senior's door (签到): the card is checked
    as for a redemption, nothing is charged yet. A staff member has one open visit at a time
    (`visit_open`; one left past its maximum is closed as overdue first). A repeated key returns
    the visit. Refuses as `redeem` does, and not_per_hour for items priced per visit or meal."""
    now = now or timezone.now()
    parsed = parse_scanned_token(token)
    _check_idempotency_key(idempotency_key)
    _check_staff(staff)
    scope = _key_scope(staff=staff, device=device)
    (started_at, offline), earlier = _service_time_or_replay(
        scanned_at=scanned_at,
        now=now,
        replay=lambda: _visit_replay(
            scope=scope,
            idempotency_key=idempotency_key,
            voucher_id=parsed.voucher_id,
            service_item_code=service_item_code,
        ),
    )
    if earlier is not None:
        return earlier
    try:
        with transaction.atomic():
            voucher = _lock_voucher(parsed.voucher_id)
            result = _visit_replay(
                scope=scope,
                idempotency_key=idempotency_key,
                voucher_id=voucher.pk,
                service_item_code=service_item_code,
            )
            if result is None:
                result = _check_in_locked(
                    voucher=voucher,
                    parsed=parsed,
                    service_item_code=service_item_code,
                    idempotency_key=idempotency_key,
                    staff=staff,
                    device=device,
                    started_at=started_at,
                    offline=offline,
                    location=location,
                    now=now,
                )
            _attempt(
                action="check_in",
                scanned=token,
                outcome="replayed" if result.replayed else "ok",
                staff=staff,
                device=device,
                voucher_id=voucher.pk,
            )
            return result
    except IntegrityError:
        result = _visit_replay(
            scope=scope,
            idempotency_key=idempotency_key,
            voucher_id=parsed.voucher_id,
            service_item_code=service_item_code,
        )
        if result:
            return result
        open_visit = Visit.objects.filter(staff=staff, status=Visit.Status.OPEN).first()
        if open_visit is not None:
            raise _visit_open(open_visit) from None
        raise


def _visit_open(visit: Visit) -> VoucherError:
    return VoucherError(
        "visit_open",
        _(
            "You are still checked in at another visit (%(item)s since %(time)s): check out or cancel it first."
        ),
        item=visit.service_item.name,
        time=f"{timezone.localtime(visit.started_at):%H:%M}",
        extra={"visit_id": visit.pk},
    )


def _check_in_locked(
    *, voucher, parsed, service_item_code, idempotency_key, staff, device, started_at, offline, location, now
) -> VisitResult:
    today = local_date(started_at)
    _check_card(voucher=voucher, parsed=parsed, at=started_at, offline=offline)
    check_month_open(month=month_of(started_at))
    contract_item = contract_item_for(
        voucher=voucher, provider=staff.provider, service_item_code=service_item_code, today=today
    )
    item = contract_item.service_item
    if item.unit != item.Unit.HOUR:
        raise VoucherError(
            "not_per_hour",
            _("%(item)s is not paid by the hour: record it with its quantity, without check-in."),
            item=item.name,
        )
    close_overdue_visits(now=now, staff=staff)
    open_visit = (
        Visit.objects.select_related("service_item").filter(staff=staff, status=Visit.Status.OPEN).first()
    )
    if open_visit is not None:
        raise _visit_open(open_visit)
    location = location or NOWHERE
    visit = Visit.objects.create(
        voucher=voucher,
        provider=staff.provider,
        contract_item=contract_item,
        service_item=item,
        staff=staff,
        device=device,
        started_at=started_at,
        increment_minutes=contract_item.visit_increment_minutes,
        max_minutes=contract_item.visit_max_minutes,
        deadline=started_at + dt.timedelta(minutes=contract_item.visit_max_minutes),
        check_in_key=idempotency_key,
        offline=offline,
        latitude=location.latitude,
        longitude=location.longitude,
        location_accuracy=location.accuracy,
    )
    return VisitResult(visit=visit, replayed=False)


def visit_quantity(*, minutes: float, increment_minutes: int, step: Decimal) -> Decimal:
    """Hours billed for a visit of `minutes`: rounded to the nearest increment (halves up), then
    down to the item's billing step. 0 when the visit was shorter than half an increment."""
    increments = int(Decimal(str(minutes)) / increment_minutes + Decimal("0.5"))
    hours = (Decimal(increments * increment_minutes) / 60).quantize(pricing.FEN)
    return (hours // step) * step if step else hours


def check_out(
    *,
    visit_id: int,
    token: str,
    idempotency_key: str,
    staff,
    device=None,
    now: dt.datetime | None = None,
    scanned_at: dt.datetime | None = None,
    location: Location | None = None,
    confirm_senior_share: Decimal | None = None,
    from_scanner: bool = False,
) -> RedeemResult:
    """Close a visit at departure (签退), scanning the same card again, and record its priced
    redemption: the length rounded to the item's increment, priced in the month of check-in with
    the contract item of check-in, debited in the same transaction. A repeated key returns the
    redemption. A visit past its maximum is closed as `overdue` (an exception for review) and
    charges nothing. `from_scanner`: the senior's share must be confirmed, as in `redeem`.
    Refuses: not_found (not this provider's visit), not_permitted (another staff member's),
    invalid_token (a card that is not the visit's voucher), visit_closed,
    visit_overdue, visit_too_short, confirmation_required, insufficient_balance, period_closed, and
    the card's refusals."""
    now = now or timezone.now()
    parsed = parse_scanned_token(token)
    _check_idempotency_key(idempotency_key)
    _check_staff(staff)
    scope = _key_scope(staff=staff, device=device)
    (ended_at, offline), earlier = _service_time_or_replay(
        scanned_at=scanned_at,
        now=now,
        replay=lambda: _replay(scope=scope, idempotency_key=idempotency_key, expect={}),
    )
    if earlier is not None:
        return earlier
    overdue = False
    with transaction.atomic():
        found = (
            Visit.objects.filter(pk=visit_id, provider=staff.provider)
            .values_list("voucher_id", flat=True)
            .first()
        )
        if found is None:
            raise VoucherError("not_found", _("No such visit."))
        voucher = _lock_voucher(found)
        visit = (
            Visit.objects.select_for_update(of=("self",))
            .select_related("contract_item__service_item")
            .get(pk=visit_id)
        )
        replay = _replay(
            scope=scope, idempotency_key=idempotency_key, expect={"voucher_id": visit.voucher_id}
        )
        if replay is not None:
            _attempt(
                action="check_out",
                scanned=token,
                outcome="replayed",
                staff=staff,
                device=device,
                voucher_id=voucher.pk,
            )
            return replay
        if visit.staff_id != staff.pk:
            raise VoucherError("not_permitted", _("Only the staff member who checked in can check out."))
        if parsed.voucher_id != visit.voucher_id:
            raise VoucherError(
                "invalid_token", _("This is not the card of the senior you checked in with: scan their card.")
            )
        if visit.status == Visit.Status.OVERDUE and not _swept_before_an_offline_check_out(visit, ended_at):
            raise _overdue_error(visit)
        if visit.status not in (Visit.Status.OPEN, Visit.Status.OVERDUE):
            raise VoucherError("visit_closed", _("This visit was already checked out or cancelled."))
        check_token_matches(voucher=voucher, parsed=parsed)
        check_code_current(voucher=voucher, token_version=parsed.version, as_of=ended_at if offline else None)
        if ended_at < visit.started_at:
            raise VoucherError(
                "invalid_input", _("The check-out time is before the check-in."), field="scanned_at"
            )
        minutes = (ended_at - visit.started_at).total_seconds() / 60
        if ended_at > visit.deadline:
            visit.status = Visit.Status.OVERDUE
            visit.closed_at = now
            visit.ended_at = ended_at
            visit.close_reason = "checked out after the maximum"
            visit.save(update_fields=["status", "closed_at", "ended_at", "close_reason"])
            overdue = True  # committed below; the refusal's scan record is the view's
        else:
            result = _check_out_locked(
                visit=visit,
                voucher=voucher,
                minutes=minutes,
                staff=staff,
                device=device,
                ended_at=ended_at,
                offline=offline,
                idempotency_key=idempotency_key,
                location=location,
                confirm_senior_share=confirm_senior_share,
                from_scanner=from_scanner,
                scanned=token,
            )
            return result
    if overdue:
        raise _overdue_error(visit)
    raise AssertionError("unreachable")


def _swept_before_an_offline_check_out(visit: Visit, ended_at: dt.datetime) -> bool:
    """A visit the schedule closed as overdue while its check-out, made in time, waited on an
    offline phone: it is checked out as made (nothing was charged for it)."""
    return visit.redemption_id is None and visit.ended_at is None and ended_at <= visit.deadline


def _overdue_error(visit: Visit) -> VoucherError:
    return VoucherError(
        "visit_overdue",
        _(
            "This visit was not checked out within %(hours)s hours, so it was closed as an exception and "
            "nothing was charged. Tell your manager the real times."
        ),
        hours=f"{Decimal(visit.max_minutes) / 60:.1f}".rstrip("0").rstrip("."),
    )


def _check_out_locked(
    *,
    visit,
    voucher,
    minutes,
    staff,
    device,
    ended_at,
    offline,
    idempotency_key,
    location,
    confirm_senior_share,
    from_scanner,
    scanned,
) -> RedeemResult:
    contract_item = visit.contract_item
    item = contract_item.service_item
    quantity = visit_quantity(
        minutes=minutes, increment_minutes=visit.increment_minutes, step=item.quantity_step
    )
    if quantity <= 0:
        raise VoucherError(
            "visit_too_short",
            _(
                "The visit has lasted %(minutes)s minutes, less than half of the %(increment)s minutes billed at least. Check out later, or cancel the visit."
            ),
            minutes=int(minutes),
            increment=visit.increment_minutes,
        )
    # Priced in the month of check-in, as of check-in: a visit across midnight or the month's end
    # belongs to the day it began.
    month = month_of(visit.started_at)
    hold_month_for_write(month)
    check_month_open(month=month)
    check_voucher_usable(
        voucher=voucher,
        token_version=voucher.token_version,
        today=local_date(visit.started_at),
        as_of=visit.started_at,
    )
    _check_not_carried_over(voucher)
    split = _price(
        voucher=voucher,
        unit_price=contract_item.unit_price.amount,
        quantity=quantity,
        offline=offline,
        confirm_senior_share=confirm_senior_share,
        confirm=from_scanner,
    )
    arrival = Location(latitude=visit.latitude, longitude=visit.longitude, accuracy=visit.location_accuracy)
    redemption = _insert_redemption(
        voucher=voucher,
        contract_item=contract_item,
        staff=staff,
        device=device,
        quantity=quantity,
        split=split,
        served_at=visit.started_at,
        offline=offline or visit.offline,
        idempotency_key=idempotency_key,
        location=arrival,
        attempt=("check_out", scanned),
        started_at=visit.started_at,
        ended_at=ended_at,
    )
    departure = location or NOWHERE
    visit.status = Visit.Status.CLOSED
    visit.close_reason = ""  # (set if the schedule had closed it while the check-out was offline)
    visit.ended_at = ended_at
    visit.closed_at = timezone.now()
    visit.redemption = redemption
    visit.check_out_key = idempotency_key
    visit.end_latitude, visit.end_longitude = departure.latitude, departure.longitude
    visit.end_location_accuracy = departure.accuracy
    visit.save()
    return RedeemResult(redemption=redemption, replayed=False)


@transaction.atomic
def cancel_visit(*, visit_id: int, reason: str, staff, now: dt.datetime | None = None) -> Visit:
    """Cancel an open visit (a mistaken check-in): closed with the reason, nothing charged.
    Refuses not_found, not_permitted (another staff member's), invalid_input (no reason),
    visit_closed."""
    _check_staff(staff)
    reason = " ".join((reason or "").split())
    visit = Visit.objects.select_for_update().filter(pk=visit_id, provider=staff.provider).first()
    if visit is None:
        raise VoucherError("not_found", _("No such visit."))
    if visit.staff_id != staff.pk:
        raise VoucherError("not_permitted", _("Only the staff member who checked in can cancel the visit."))
    if not reason:
        raise VoucherError("invalid_input", _("Say why the visit is cancelled."), field="reason")
    if visit.status != Visit.Status.OPEN:
        raise VoucherError("visit_closed", _("This visit was already checked out or cancelled."))
    visit.status = Visit.Status.CANCELLED
    visit.closed_at = now or timezone.now()
    visit.close_reason = reason[:200]
    visit.save(update_fields=["status", "closed_at", "close_reason"])
    return visit


def close_overdue_visits(*, now: dt.datetime | None = None, staff=None) -> int:
    """Close the visits left open past their maximum as `overdue` (an exception for review,
    nothing charged): one UPDATE, run every few minutes by the schedule and before a check-in."""
    now = now or timezone.now()
    visits = Visit.objects.filter(status=Visit.Status.OPEN, deadline__lt=now)
    if staff is not None:
        visits = visits.filter(staff=staff)
    return visits.update(status=Visit.Status.OVERDUE, closed_at=now, close_reason="not checked out in time")


# What a void becomes once its redemption's month is closed: billing registers its adjustment here
# (billing.apps; billing depends on vouchers, not the other way round). Without one, it is refused.
_late_void_handler = None


def register_late_void_handler(handler) -> None:
    """`handler(*, redemption, reason, user, now)` records what a void after the month's close
    changes, in the void's transaction, before the void is written."""
    global _late_void_handler
    _late_void_handler = handler


@transaction.atomic
def void_redemption(
    *, redemption_id: int, reason: str, user, now: dt.datetime | None = None
) -> RedemptionVoid:
    """Cancel a redemption with a reason (撤销): a new fact, never a delete.

    Staff may void only their own provider's redemptions. The government share goes back onto
    the voucher if the voucher is still usable. Locks the voucher row first, then checks.
    Once the redemption's month is closed (settled), its statement does not change: the void is
    recorded with an adjustment in the provider's next open month (`billing.services.
    adjust_late_void`), and nothing goes back onto the voucher (its month's balance is gone).
    Refuses: not_found, not_permitted, invalid_input (no reason), already_voided, and
    period_closed when the month is closed and no adjustment can be recorded.
    """
    now = now or timezone.now()
    reason = (reason or "").strip()
    redemption = Redemption.objects.select_related("provider").filter(pk=redemption_id).first()
    if redemption is None:
        raise VoucherError("not_found", _("No such redemption."))
    staff = getattr(user, "staff_member", None)
    # A suspended provider's staff void nothing, whatever device token they hold (as they scan nothing).
    may_void = (
        staff is not None
        and staff.is_active
        and staff.provider_id == redemption.provider_id
        and redemption.provider.is_active
    ) or user.has_perm("vouchers.add_redemptionvoid")
    if not may_void:
        raise VoucherError("not_permitted", _("You may only void your own organisation's redemptions."))
    if not reason:
        raise VoucherError("invalid_input", _("Say why the redemption is being voided."))
    voucher = Voucher.objects.select_for_update(of=("self",)).get(pk=redemption.voucher_id)
    if RedemptionVoid.objects.filter(redemption_id=redemption.pk).exists():
        raise VoucherError("already_voided", _("This redemption has already been voided."))
    hold_month_for_write(redemption.service_month)
    today = local_date(now)
    if month_is_closed(month=redemption.service_month):
        if _late_void_handler is None:
            check_month_open(month=redemption.service_month)
        _late_void_handler(redemption=redemption, reason=reason, user=user, now=now)
        still_usable = False
    else:
        still_usable = (
            voucher.status == Voucher.Status.ACTIVE and voucher.valid_from <= today <= voucher.valid_until
        )
    credit = redemption.government_share.amount if still_usable else Decimal("0.00")
    if credit:
        voucher.balance = Money(voucher.balance.amount + credit, CURRENCY)
        voucher.save(update_fields=["balance"])
    redemption.voucher = voucher  # the locked, updated row: callers read the new balance from it
    return RedemptionVoid.objects.create(
        redemption=redemption, reason=reason[:200], voided_by=user, credited_back=Money(credit, CURRENCY)
    )


def record_scan_attempt(
    *, scanned: str, action: str, outcome: str, staff=None, device=None, voucher_id: int | None = None
) -> None:
    """Keep a row for every scan, refused ones included (its own small transaction). The voucher
    is the one `voucher_id` names, or else the one a genuine code names, if it exists."""
    if voucher_id is None:
        parsed = tokens.parse_token(scanned)
        if parsed and Voucher.objects.filter(pk=parsed.voucher_id).exists():
            voucher_id = parsed.voucher_id
    _attempt(
        action=action, scanned=scanned, outcome=outcome, staff=staff, device=device, voucher_id=voucher_id
    )


def revoke_vouchers_on_leaving(*, senior, on: dt.date, **_signal) -> int:
    """Revoke a senior's vouchers still valid on or after `on` (they moved out or died).

    Runs inside `change_senior_status`'s transaction (the `senior_left` signal). A scan that holds
    the voucher's lock finishes first; one that comes after is refused `voucher_revoked`.
    Returns the number of vouchers revoked.
    """
    return Voucher.objects.filter(senior=senior, status=Voucher.Status.ACTIVE, valid_until__gte=on).update(
        status=Voucher.Status.REVOKED, revoked_at=timezone.now()
    )


@transaction.atomic
def reissue_voucher(
    *, voucher_id: int, reason: str, by=None, now: dt.datetime | None = None
) -> VoucherReissue:
    """A new QR code for a voucher (a lost or damaged card, 补发): the token version goes up in
    the same transaction as the audit row, and from that moment the old code is refused
    `voucher_revoked` (a scan holding the voucher's lock finishes first). The balance, the
    services and the month stay. `by` is the user (None: a script, `manage.py reissue_voucher`).

    Refuses `not_found` (no such voucher, or one outside the user's registry), `not_permitted`
    (no reissue permission, or a senior the user may not change), `invalid_input` (no reason, or
    a voucher no longer usable: expired, revoked, or its month over).
    """
    from eligibility.selectors import can_change, visible_to

    reason = " ".join((reason or "").split())
    voucher = Voucher.objects.select_for_update().select_related("senior").filter(pk=voucher_id).first()
    # Outside the user's registry it does not exist for them (not even "forbidden")
    if voucher is None or (by is not None and not visible_to(by).filter(pk=voucher.senior_id).exists()):
        raise VoucherError("not_found", _("No such voucher."))
    if by is not None and not by.has_perm("vouchers.reissue_voucher"):
        raise VoucherError("not_permitted", _("You may not reissue vouchers."))
    if by is not None and not can_change(by, voucher.senior):
        raise VoucherError("not_permitted", _("You may not reissue this senior's voucher."))
    if not reason:
        raise VoucherError(
            "invalid_input", _("Say why the voucher is reissued (lost, damaged …)."), field="reason"
        )
    today = local_date(now or timezone.now())
    if voucher.status != Voucher.Status.ACTIVE or voucher.valid_until < today:
        raise VoucherError(
            "invalid_input",
            _("Only a voucher that can still be used is reissued; this one is %(status)s."),
            status=voucher.get_status_display(),
        )
    old = voucher.token_version
    voucher.token_version = old + 1
    voucher.save(update_fields=["token_version"])
    return VoucherReissue.objects.create(
        voucher=voucher, old_version=old, new_version=old + 1, reason=reason[:200], reissued_by=by
    )


# --- Disputes: "this service did not happen", from the senior's page ----------------------------

DISPUTE_NOTE_MAX = 500
DISPUTES_PER_VOUCHER_PER_DAY = 5  # recorded disputes on one voucher in a day (Asia/Shanghai)
DISPUTES_PER_CLIENT_PER_HOUR = 10  # recorded disputes from one client in the last hour
# Every try of one client in an hour, refused ones too (guessed service numbers): counted in the
# cache, which may fail (Redis down); then only the two limits above, kept in the database, hold.
DISPUTE_ATTEMPTS_PER_CLIENT_PER_HOUR = 30
_DISPUTE_CLIENT_SALT = "vouchers.dispute-client.v1"


@dataclass(frozen=True)
class DisputeResult:
    dispute: Dispute
    created: bool  # False: this service's open dispute was recorded before (a repeat)


def dispute_client_hash(address: str) -> str:
    """A keyed hash (HMAC-SHA256 from SECRET_KEY) of the client's IPv4 address or its IPv6 /64
    (one household's network). No raw address is kept, and unlike a plain hash of the 2³² IPv4
    addresses this one cannot be reversed by trying them all without the key."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        client = (address or "").strip()
    else:
        client = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    return salted_hmac(_DISPUTE_CLIENT_SALT, client, algorithm="sha256").hexdigest()


def _count_dispute_attempt(client_hash: str) -> int:
    """This client's tries this hour, this one included; 0 when the cache fails: Redis is a
    helper, so the dispute is still recorded (the database's limits hold) and the log says so."""
    key = f"vouchers:dispute-attempts:{client_hash}"

    def count() -> int:
        cache.add(key, 0, 3600)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, 3600)
            return 1

    return cache_call("dispute attempts", count, default=0)


def _too_many_disputes():
    return VoucherError(
        "rate_limited",
        _("Many services have been reported already. To report more, please call your community worker."),
    )


@transaction.atomic
def file_dispute(
    *,
    token: str,
    redemption_id,
    note: str = "",
    callback_phone: str = "",
    client_address: str,
    now: dt.datetime | None = None,
) -> DisputeResult:
    """Record a senior's or family's "this service did not happen" (异议) on a service of the
    voucher of `token`, open until the bureau has checked it. An expired voucher's services may
    be disputed: the month is over, the money is not.

    Locks the service's row, so a repeat (a double tap, a reload) returns the open dispute
    recorded before (`created` False) instead of a second row; the database keeps at most one
    open dispute per service anyway. Refuses: invalid_token (forged or unknown code),
    voucher_revoked (a replaced code, a revoked voucher), not_found (no such service on this
    voucher), already_voided (the service was cancelled and is not counted), invalid_input (a
    note over 500 characters, a callback phone that is not one), rate_limited (more than
    DISPUTES_PER_VOUCHER_PER_DAY on the voucher today, DISPUTES_PER_CLIENT_PER_HOUR from the
    client, or DISPUTE_ATTEMPTS_PER_CLIENT_PER_HOUR tries from it).
    """
    now = now or timezone.now()
    client_hash = dispute_client_hash(client_address)
    if _count_dispute_attempt(client_hash) > DISPUTE_ATTEMPTS_PER_CLIENT_PER_HOUR:
        raise _too_many_disputes()
    parsed = parse_scanned_token(token)
    # The voucher's row lock (the order redemptions take too) makes its daily count below exact
    # when several of its services are disputed at once.
    voucher = (
        Voucher.objects.select_for_update(of=("self",))
        .filter(pk=parsed.voucher_id)
        .only("period", "status", "token_version")
        .first()
    )
    if voucher is None:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    check_token_matches(voucher=voucher, parsed=parsed)
    check_code_current(voucher=voucher, token_version=parsed.version)
    try:
        pk = int(redemption_id)
    except (TypeError, ValueError):
        pk = 0
    redemption = (
        Redemption.objects.select_for_update(of=("self",)).filter(pk=pk, voucher_id=voucher.pk).first()
        if 0 < pk < 2**63
        else None
    )
    if redemption is None:
        raise VoucherError("not_found", _("This service is not on this voucher."))
    if RedemptionVoid.objects.filter(redemption_id=redemption.pk).exists():
        raise VoucherError("already_voided", _("This service was cancelled; it is not counted."))
    recorded = Dispute.objects.filter(redemption=redemption, status=Dispute.Status.OPEN).first()
    if recorded is not None:
        return DisputeResult(dispute=recorded, created=False)

    note = (note or "").replace("\r\n", "\n").strip()
    if len(note) > DISPUTE_NOTE_MAX:
        raise VoucherError(
            "invalid_input", _("Please write at most %(max)s characters."), field="note", max=DISPUTE_NOTE_MAX
        )
    try:
        callback_phone = normalise_phone(callback_phone, field="callback_phone")
    except EligibilityError as error:
        raise VoucherError("invalid_input", error.message, field="callback_phone") from None

    day_start = dt.datetime.combine(local_date(now), dt.time.min, tzinfo=SHANGHAI)
    on_voucher_today = Dispute.objects.filter(redemption__voucher_id=voucher.pk, created_at__gte=day_start)
    from_client = Dispute.objects.filter(client_hash=client_hash, created_at__gt=now - dt.timedelta(hours=1))
    if (
        on_voucher_today.count() >= DISPUTES_PER_VOUCHER_PER_DAY
        or from_client.count() >= DISPUTES_PER_CLIENT_PER_HOUR
    ):
        raise _too_many_disputes()
    dispute = Dispute.objects.create(
        redemption=redemption,
        note=note,
        callback_phone=callback_phone,
        client_hash=client_hash,
        created_at=now,
    )
    return DisputeResult(dispute=dispute, created=True)
