"""Writes of the vouchers app: issuance, redemption and voids.

Redemption follows DESIGN.md §3: verify the token, lock the voucher row, re-check everything
under the lock, price with `billing.pricing`, insert the redemption and debit the balance in the
same transaction.
"""

import datetime as dt
import hashlib
import ipaddress
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from billing import pricing
from config.months import SHANGHAI, last_day, local_date, month_of, next_month
from eligibility.errors import EligibilityError
from eligibility.models import Determination, Policy, Senior, Tier
from eligibility.normalise import normalise_phone
from eligibility.services import EVALUATION_LOCK
from vouchers import tokens
from vouchers.errors import VoucherError
from vouchers.models import (
    Dispute,
    IssuanceRun,
    Redemption,
    RedemptionVoid,
    ScanAttempt,
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
class RedeemResult:
    redemption: Redemption
    replayed: bool

    @property
    def remaining_balance(self) -> Money:
        return self.redemption.voucher.balance


def _parse_quantity(quantity) -> Decimal:
    value = pricing.parse_hundredths(quantity, maximum=MAX_QUANTITY)
    if value is None:
        raise VoucherError(
            "invalid_input",
            _("The quantity must be a number greater than 0 and at most 99.99, in steps of 0.01."),
        )
    return value


def _replay(*, provider, idempotency_key, voucher_id, service_item_code, quantity) -> RedeemResult | None:
    """The redemption already recorded under this key, if the request is the same one again.

    A narrow lookup on the unique (provider, key) index; the full row is loaded only for a replay.
    """
    found = (
        Redemption.objects.filter(provider=provider, idempotency_key=idempotency_key)
        .order_by()
        .values_list("pk", "voucher_id", "service_item__code", "quantity")
        .first()
    )
    if found is None:
        return None
    pk, *recorded = found
    if tuple(recorded) != (voucher_id, service_item_code, quantity):
        raise VoucherError(
            "idempotency_conflict", _("This idempotency key was already used for a different redemption.")
        )
    existing = Redemption.objects.select_related("voucher__senior", "service_item").get(pk=pk)
    return RedeemResult(redemption=existing, replayed=True)


def redeem(
    *,
    token: str,
    service_item_code: str,
    quantity,
    idempotency_key: str,
    staff,
    device=None,
    now: dt.datetime | None = None,
) -> RedeemResult:
    """Record one service against a voucher, priced now, debiting the government share.

    Locks the voucher row (SELECT … FOR UPDATE) and re-checks under the lock, so the balance
    never goes below zero nor is spent twice. A repeated `idempotency_key` (per provider) returns
    the first redemption. Refuses: invalid_input, invalid_token, voucher_revoked,
    voucher_not_yet_valid, voucher_expired, period_closed, not_contracted, outside_service_area,
    not_permitted, idempotency_conflict.
    """
    now = now or timezone.now()
    parsed = parse_scanned_token(token)
    quantity = _parse_quantity(quantity)
    if not IDEMPOTENCY_KEY.match(idempotency_key or ""):
        raise VoucherError(
            "invalid_input", _("The idempotency key must be 8–64 letters, digits or the characters _ . : -")
        )
    if not staff.is_active or not staff.provider.is_active:
        raise VoucherError("not_permitted", _("This account may not record services."))
    provider = staff.provider
    # The replay check runs under the voucher's lock (in _redeem_locked), where it cannot race.
    try:
        with transaction.atomic():
            return _redeem_locked(
                parsed=parsed,
                service_item_code=service_item_code,
                quantity=quantity,
                idempotency_key=idempotency_key,
                staff=staff,
                device=device,
                now=now,
            )
    except IntegrityError:
        # The same key committed by a concurrent request between our check and our insert.
        replay = _replay(
            provider=provider,
            idempotency_key=idempotency_key,
            voucher_id=parsed.voucher_id,
            service_item_code=service_item_code,
            quantity=quantity,
        )
        if replay:
            return replay
        raise


def _redeem_locked(
    *, parsed, service_item_code, quantity, idempotency_key, staff, device, now
) -> RedeemResult:
    voucher = (
        Voucher.objects.select_for_update(of=("self",))
        .select_related("senior__community")
        .filter(pk=parsed.voucher_id)
        .first()
    )
    if voucher is None:
        raise VoucherError("invalid_token", _("This code is not a valid voucher code."))
    # A concurrent request with the same key may have committed while we waited for the lock.
    replay = _replay(
        provider=staff.provider,
        idempotency_key=idempotency_key,
        voucher_id=voucher.pk,
        service_item_code=service_item_code,
        quantity=quantity,
    )
    if replay:
        return replay
    today = local_date(now)
    check_token_matches(voucher=voucher, parsed=parsed)
    check_voucher_usable(voucher=voucher, token_version=parsed.version, today=today)
    hold_month_for_write(month_of(now))
    check_month_open(month=month_of(now))
    contract_item = contract_item_for(
        voucher=voucher, provider=staff.provider, service_item_code=service_item_code, today=today
    )
    # The item's billing increment is data (providers.ServiceItem.quantity_step): 1 visit, 0.5 h…
    item = contract_item.service_item
    if quantity % item.quantity_step:
        raise VoucherError(
            "invalid_input",
            _("This service is counted in steps of %(step)s %(unit)s."),
            step=f"{item.quantity_step.normalize():f}",
            unit=item.get_unit_display(),
        )
    split = pricing.split_price(
        unit_price=contract_item.unit_price.amount,
        quantity=quantity,
        government_share_rate=voucher.government_share_rate,
        balance=voucher.balance.amount,
    )
    redemption = Redemption.objects.create(
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
        service_month=month_of(now),
        served_at=now,
        idempotency_key=idempotency_key,
    )
    if split.government_share:
        voucher.balance = Money(voucher.balance.amount - split.government_share, CURRENCY)
        voucher.save(update_fields=["balance"])
    return RedeemResult(redemption=redemption, replayed=False)


@transaction.atomic
def void_redemption(
    *, redemption_id: int, reason: str, user, now: dt.datetime | None = None
) -> RedemptionVoid:
    """Cancel a redemption with a reason (撤销): a new fact, never a delete.

    Staff may void only their own provider's redemptions. The government share goes back onto
    the voucher if the voucher is still usable. Locks the voucher row first, then checks.
    Refuses: not_found, not_permitted, invalid_input (no reason), already_voided, period_closed.
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
    check_month_open(month=redemption.service_month)
    today = local_date(now)
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


def record_scan_attempt(*, scanned: str, action: str, outcome: str, staff=None, device=None) -> None:
    """Keep a row for every scan, refused ones included (its own small transaction)."""
    parsed = tokens.parse_token(scanned)
    ScanAttempt.objects.create(
        device=device,
        staff=staff,
        voucher_id=parsed.voucher_id
        if parsed and Voucher.objects.filter(pk=parsed.voucher_id).exists()
        else None,
        action=action,
        outcome=outcome[:40],
        scanned_hash=hashlib.sha256((scanned or "").encode()).hexdigest(),
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

_dispute_log = logging.getLogger("vouchers.disputes")
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
    try:
        cache.add(key, 0, 3600)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, 3600)
            return 1
    except Exception:  # any cache failure: fail open
        _dispute_log.warning("dispute attempts could not be counted in the cache", exc_info=True)
        return 0


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
