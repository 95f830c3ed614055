"""Writes of the billing app: the monthly settlement (统一结算) and the life of its statements.

    settle            close a month to new scans and draft one statement per provider; again,
                      with identical figures, until a statement of the month is approved
    review_statement  a finance user has checked a draft (with a note)
    approve_statement a second finance user approves it (four eyes: not whoever prepared it)
    mark_paid         the payment's reference and date; the month is locked once all are paid
    record_adjustment a correction of a closed month's redemption, landing in an open month
    request_export    a settled month's workbook: written at once when small, else by a worker
    finish_export     write a requested workbook (the body of `tasks.run_settlement_export`)

Each is one transaction with keyword-only arguments and is attributable: `by` a user, or `job` the
name of a scheduled job or command (e.g. "celery:settle_month"). Refusals are `BillingError`s with
the codes each docstring lists. Locks are taken in one order: the month's ledger lock
(`vouchers.month_locks`), then the period row, then statement rows.
"""

import datetime as dt
import logging
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from djmoney.money import Money

from billing import exports, reconciliation, selectors, settlement_sql
from billing.errors import BillingError
from billing.models import Adjustment, SettlementExport, SettlementPeriod, Statement
from billing.pricing import to_fen
from config.months import format_month, last_day, local_date, month_bounds, month_of, next_month
from config.roles import FINANCE, roles_of
from outbox import services as outbox
from vouchers.models import ClosedMonth, Redemption, RedemptionVoid
from vouchers.month_locks import freeze_month_for_settlement, hold_month_for_write

CURRENCY = "CNY"
ZERO = Decimal("0.00")
JOB_NAME_LENGTH = 60
SETTLEMENT_WORK_MEM = "128MB"


@dataclass(frozen=True)
class SettleResult:
    period: SettlementPeriod
    statements: list[Statement]
    redemption_count: int
    total_amount: Money
    government_total: Money
    senior_total: Money

    @property
    def month(self) -> dt.date:
        return self.period.month


def _money(value) -> Money:
    if isinstance(value, Money):
        value = value.amount
    return Money(to_fen(Decimal(value if value is not None else ZERO)), CURRENCY)


def check_period_over(*, month: dt.date, now: dt.datetime) -> None:
    """Refuse `period_not_over` while any moment of the month (Asia/Shanghai) is still to come."""
    _start, end = month_bounds(month)
    if now < end:
        raise BillingError(
            "period_not_over",
            _("%(month)s has not ended yet; it can be settled from the first day of the next month."),
            month=format_month(month),
        )


def _check_month(month) -> None:
    if not isinstance(month, dt.date) or isinstance(month, dt.datetime) or month.day != 1:
        raise BillingError("invalid_input", _("A settlement period is a month (its first day)."))


def is_finance(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_superuser or FINANCE in roles_of(user)))


def _actor(*, by, job: str) -> tuple[object | None, str]:
    """Exactly one of a finance user and a job name; refuses `invalid_input`, `not_permitted`."""
    job = (job or "").strip()
    if (by is None) == (not job):
        raise BillingError("invalid_input", _("Say who does this: a user or a job, not both."))
    if len(job) > JOB_NAME_LENGTH:
        raise BillingError("invalid_input", _("A job's name is at most 60 characters."))
    if by is not None and not is_finance(by):
        raise BillingError("not_permitted", _("Only finance staff may do this."))
    return by, job


def _fetch_period_for_update(*, month: dt.date) -> SettlementPeriod:
    period = SettlementPeriod.objects.select_for_update().filter(month=month).first()
    if period is None:
        raise BillingError("not_found", _("%(month)s has not been settled."), month=format_month(month))
    return period


def _check_not_locked(period: SettlementPeriod) -> None:
    if period.state == SettlementPeriod.State.LOCKED:
        raise BillingError(
            "period_locked",
            _("%(month)s is paid and locked; nothing in it can change."),
            month=format_month(period.month),
        )


@transaction.atomic
def settle(*, month: dt.date, by=None, job: str = "", now: dt.datetime | None = None) -> SettleResult:
    """Close `month` to new scans and draft one statement per provider, set-based in SQL.

    Guarantees: on PostgreSQL the month's ledger is frozen first (`vouchers.month_locks`: redeems
    and voids in flight finish, new ones wait; other months go on), then its period row is locked,
    so two settlements of a month run one after the other. The month is closed
    (`vouchers.ClosedMonth`: later redeems are refused `period_closed`, later voids become
    adjustments in an open month). Every provider with services or adjustments in the month, or an
    active contract overlapping it, gets a draft statement: lines per tier and service item of its
    paid services and of the adjustments landing here, its figures the sums of its lines. A second
    run recomputes the same figures (a closed month's ledger does not change) and sends every
    statement back to draft with the new preparer, so its review is done again. The
    reconciliation checks run and are stored (billing.reconciliation).

    Refuses: invalid_input (not a month's first day; not exactly one of `by` and `job`),
    not_permitted (`by` is not finance staff), period_not_over, period_locked, already_approved
    (a statement of the month is approved: its figures are final).
    """
    _check_month(month)
    by, job = _actor(by=by, job=job)
    now = now or timezone.now()
    check_period_over(month=month, now=now)

    freeze_month_for_settlement(month)
    SettlementPeriod.objects.get_or_create(month=month)
    period = _fetch_period_for_update(month=month)
    _check_not_locked(period)
    if period.statements.filter(state__in=[Statement.State.APPROVED, Statement.State.PAID]).exists():
        raise BillingError(
            "already_approved",
            _("A statement of %(month)s is approved, so the month cannot be settled again."),
            month=format_month(month),
        )
    ClosedMonth.objects.get_or_create(month=month)
    period.state = SettlementPeriod.State.CLOSED
    period.settled_at = now
    period.settled_by = by
    period.settled_by_job = job
    period.save(update_fields=["state", "settled_at", "settled_by", "settled_by_job"])

    ops = connection.ops
    params = {
        "period": period.pk,
        "month": ops.adapt_datefield_value(month),
        "last_day": ops.adapt_datefield_value(last_day(month)),
        "now": ops.adapt_datetimefield_value(now),
        "by": by.pk if by is not None else None,
        "job": job,
    }
    settlement_sql.run(settlement_sql.missing_statements(), params)
    settlement_sql.run(
        "DELETE FROM billing_statementline WHERE statement_id IN "
        "(SELECT id FROM billing_statement WHERE period_id = %(period)s)",
        params,
    )
    if connection.vendor == "postgresql":
        # A city's month: room to hash its vouchers and group them in memory, for this
        # transaction only (the server's default, often 4 MB, would spill them to disk).
        settlement_sql.run(f"SET LOCAL work_mem = '{SETTLEMENT_WORK_MEM}'", None)
        # One pass over the ledger (parallel where the server allows): the service lines, and
        # what the checks need of it; then the lines in one INSERT.
        rows = settlement_sql.fetch(settlement_sql.pg_ledger(), params)
        columns = zip(*rows, strict=True) if rows else [()] * len(settlement_sql.LINE_COLUMNS)
        arrays = {
            name: list(values)
            for (name, _kind), values in zip(settlement_sql.LINE_COLUMNS, columns, strict=False)
        }
        settlement_sql.run(settlement_sql.insert_service_lines(), {**params, **arrays})
        ledger = reconciliation.Ledger.from_pg_rows(rows)
    else:
        settlement_sql.run(settlement_sql.service_lines(), params)
        ledger = None
    settlement_sql.run(settlement_sql.adjustment_lines(), params)
    settlement_sql.run(settlement_sql.statement_figures(), params)
    reconciliation.run_checks(period=period, now=now, ledger=ledger)

    statements = list(period.statements.order_by("provider_id"))
    totals = period.statements.aggregate(
        n=Sum("redemption_count"), a=Sum("total_amount"), g=Sum("government_total"), s=Sum("senior_total")
    )
    return SettleResult(
        period=period,
        statements=statements,
        redemption_count=totals["n"] or 0,
        total_amount=_money(totals["a"]),
        government_total=_money(totals["g"]),
        senior_total=_money(totals["s"]),
    )


def _statement_for_update(*, statement_id: int) -> Statement:
    """The statement and its period, locked in that order (the order settle locks them in)."""
    period_id = Statement.objects.filter(pk=statement_id).values_list("period_id", flat=True).first()
    if period_id is None:
        raise BillingError("not_found", _("No such statement."))
    period = SettlementPeriod.objects.select_for_update().get(pk=period_id)
    statement = (
        Statement.objects.select_for_update(of=("self",)).select_related("provider").get(pk=statement_id)
    )
    statement.period = period
    _check_not_locked(period)
    return statement


def _wrong_state(statement: Statement, code: str, message) -> BillingError:
    return BillingError(code, message, state=statement.get_state_display())


@transaction.atomic
def review_statement(*, statement_id: int, by, note: str = "", now: dt.datetime | None = None) -> Statement:
    """A finance user has checked a draft statement: it becomes `reviewed`, with their note.

    Locks the period, then the statement. Refuses: not_found, not_permitted (not finance staff),
    period_locked, not_draft (reviewed, approved or paid already), invalid_input (a note over
    2,000 characters).
    """
    if not is_finance(by):
        raise BillingError("not_permitted", _("Only finance staff may review a statement."))
    note = (note or "").strip()
    if len(note) > 2000:
        raise BillingError("invalid_input", _("A review note is at most 2,000 characters."))
    statement = _statement_for_update(statement_id=statement_id)
    if statement.state != Statement.State.DRAFT:
        raise _wrong_state(
            statement, "not_draft", _("Only a draft can be reviewed; this statement is %(state)s.")
        )
    statement.state = Statement.State.REVIEWED
    statement.reviewed_at = now or timezone.now()
    statement.reviewed_by = by
    statement.review_note = note
    statement.save(update_fields=["state", "reviewed_at", "reviewed_by", "review_note"])
    return statement


def payment_days() -> int:
    """Days from approval to the payment's due date (policy: STATEMENT_PAYMENT_DAYS, default 30)."""
    return int(getattr(settings, "STATEMENT_PAYMENT_DAYS", 30))


@transaction.atomic
def approve_statement(*, statement_id: int, by, now: dt.datetime | None = None) -> Statement:
    """A second finance user approves a reviewed statement: its figures and lines are final (the
    month cannot be settled again), and it is due for payment `payment_days()` days later.

    Four eyes: whoever prepared the statement cannot approve it, nor, when a scheduled job prepared
    it, whoever reviewed it (the database refuses both too).
    Refuses: not_found, not_permitted, period_locked, not_reviewed (a draft, or approved already),
    four_eyes, reconciliation_failed (the month's statements do not add up to their ledger).
    """
    if not is_finance(by):
        raise BillingError("not_permitted", _("Only finance staff may approve a statement."))
    statement = _statement_for_update(statement_id=statement_id)
    if statement.state != Statement.State.REVIEWED:
        raise _wrong_state(
            statement, "not_reviewed", _("Only a reviewed statement can be approved; this one is %(state)s.")
        )
    if statement.prepared_by_id == by.pk:
        raise BillingError(
            "four_eyes", _("You prepared this statement, so another finance user must approve it.")
        )
    if statement.prepared_by_id is None and statement.reviewed_by_id == by.pk:
        raise BillingError(
            "four_eyes", _("You reviewed this statement, so another finance user must approve it.")
        )
    if reconciliation.failed(period=statement.period, codes=reconciliation.BLOCKING):
        raise BillingError(
            "reconciliation_failed",
            _("The statements of %(month)s do not add up to their services; settle the month again."),
            month=format_month(statement.period.month),
        )
    now = now or timezone.now()
    statement.state = Statement.State.APPROVED
    statement.approved_at = now
    statement.approved_by = by
    statement.due_date = local_date(now) + dt.timedelta(days=payment_days())
    statement.save(update_fields=["state", "approved_at", "approved_by", "due_date"])
    return statement


@transaction.atomic
def mark_paid(
    *, statement_id: int, by, reference: str, paid_on: dt.date, now: dt.datetime | None = None
) -> Statement:
    """Record the payment of an approved statement (its bank reference and date). When every
    statement of the month is paid, the month is locked: nothing in it changes any more.

    Refuses: not_found, not_permitted, period_locked, not_approved, invalid_input (no reference,
    over 100 characters, or a date before the approval or in the future).
    """
    if not is_finance(by):
        raise BillingError("not_permitted", _("Only finance staff may record a payment."))
    reference = (reference or "").strip()
    if not reference or len(reference) > 100:
        raise BillingError(
            "invalid_input", _("Give the payment's reference (at most 100 characters)."), field="reference"
        )
    statement = _statement_for_update(statement_id=statement_id)
    if statement.state != Statement.State.APPROVED:
        raise _wrong_state(
            statement, "not_approved", _("Only an approved statement can be paid; this one is %(state)s.")
        )
    now = now or timezone.now()
    if not isinstance(paid_on, dt.date) or not local_date(statement.approved_at) <= paid_on <= local_date(
        now
    ):
        raise BillingError(
            "invalid_input",
            _("The payment date is between the approval and today."),
            field="paid_on",
        )
    statement.state = Statement.State.PAID
    statement.paid_on = paid_on
    statement.paid_at = now
    statement.paid_by = by
    statement.payment_reference = reference
    statement.save(update_fields=["state", "paid_on", "paid_at", "paid_by", "payment_reference"])
    period = statement.period
    if not period.statements.filter(~Q(state=Statement.State.PAID)).exists():
        period.state = SettlementPeriod.State.LOCKED
        period.locked_at = now
        period.save(update_fields=["state", "locked_at"])
    return statement


def landing_month(*, after: dt.date, now: dt.datetime) -> dt.date:
    """The first month after `after` that is not closed: where an adjustment of `after` lands.
    (At worst the current month, which is never closed.)"""
    closed = set(ClosedMonth.objects.filter(month__gt=after).values_list("month", flat=True))
    month = next_month(after)
    while month in closed and month < month_of(now):
        month = next_month(month)
    return month


def _insert_adjustment(
    *,
    redemption: Redemption,
    kind: str,
    amount: Decimal,
    government_share: Decimal,
    quantity: Decimal,
    reason: str,
    by,
    job: str,
    now: dt.datetime,
) -> Adjustment:
    """The adjustment row, in the month it lands in, held open (shared ledger lock) while written."""
    month = landing_month(after=redemption.service_month, now=now)
    hold_month_for_write(month)
    if ClosedMonth.objects.filter(month=month).exists():
        # Closed between the look-up and the lock: the next one is open now.
        month = landing_month(after=month, now=now)
        hold_month_for_write(month)
    amount, government_share = to_fen(amount), to_fen(government_share)
    return Adjustment.objects.create(
        kind=kind,
        redemption=redemption,
        provider_id=redemption.provider_id,
        month=month,
        tier_code=redemption.tier_code,
        service_item_id=redemption.service_item_id,
        quantity=quantity,
        amount=Money(amount, CURRENCY),
        government_share=Money(government_share, CURRENCY),
        senior_share=Money(amount - government_share, CURRENCY),
        reason=reason[:200],
        created_at=now,
        created_by=by,
        created_by_job=job,
    )


def adjust_late_void(*, redemption: Redemption, reason: str, user, now: dt.datetime) -> Adjustment:
    """The adjustment of a void recorded after the redemption's month was closed: the negative of
    the redemption, in the next open month of its provider. Called by
    `vouchers.services.void_redemption` (which has checked who may void, and locked the voucher)
    inside its transaction, before it writes the void; registered in `billing.apps`."""
    return _insert_adjustment(
        redemption=redemption,
        kind=Adjustment.Kind.VOID,
        amount=-redemption.amount.amount,
        government_share=-redemption.government_share.amount,
        quantity=-redemption.quantity,
        reason=reason,
        by=user,
        job="",
        now=now,
    )


@transaction.atomic
def record_adjustment(
    *,
    redemption_id: int,
    kind: str,
    amount: Decimal,
    government_share: Decimal,
    reason: str,
    quantity: Decimal = ZERO,
    by=None,
    job: str = "",
    now: dt.datetime | None = None,
) -> Adjustment:
    """A correction (or a confirmed integrity finding) of a redemption whose month is closed: a
    signed amount and government share (the senior's share is the rest) landing in the provider's
    next open month as an adjustment line. A void after close is `vouchers.services.void_redemption`.

    Refuses: not_found, invalid_input (kind, reason, or a share beyond the amount, or by/job),
    not_permitted (not finance staff), period_open (the redemption's month is open: void it or
    settle first), already_voided (a voided redemption is corrected no further).
    """
    by, job = _actor(by=by, job=job)
    if kind not in (Adjustment.Kind.CORRECTION, Adjustment.Kind.FINDING):
        raise BillingError("invalid_input", _("An adjustment is a correction or a finding."), field="kind")
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("invalid_input", _("Say why the adjustment is made."), field="reason")
    try:
        amount, government_share = to_fen(Decimal(amount)), to_fen(Decimal(government_share))
        quantity = Decimal(quantity).quantize(Decimal("0.01"))
    except (ArithmeticError, TypeError, ValueError):
        raise BillingError("invalid_input", _("An amount is a number of yuan to the fen.")) from None
    if amount == 0 or not (min(amount, ZERO) <= government_share <= max(amount, ZERO)):
        raise BillingError(
            "invalid_input", _("The amount is not zero and the government's share lies between it and zero.")
        )
    redemption = Redemption.objects.filter(pk=redemption_id).first()
    if redemption is None:
        raise BillingError("not_found", _("No such redemption."))
    now = now or timezone.now()
    hold_month_for_write(redemption.service_month)
    if not ClosedMonth.objects.filter(month=redemption.service_month).exists():
        raise BillingError(
            "period_open",
            _("%(month)s is still open: void the service instead, or settle the month first."),
            month=format_month(redemption.service_month),
        )
    if RedemptionVoid.objects.filter(redemption_id=redemption.pk).exists():
        raise BillingError("already_voided", _("This service was voided; it is corrected no further."))
    return _insert_adjustment(
        redemption=redemption,
        kind=kind,
        amount=amount,
        government_share=government_share,
        quantity=quantity,
        reason=reason,
        by=by,
        job=job,
        now=now,
    )


_export_log = logging.getLogger("billing.exports")
EXPORT_PROGRESS_SECONDS = 24 * 3600  # how long the cache keeps a workbook's progress


def exports_storage():
    """Where the workbooks go (settings.STORAGES["exports"], `EXPORT_ROOT`)."""
    return storages["exports"]


def request_export(*, month: dt.date, user, provider_code: str | None = None) -> SettlementExport:
    """Ask for a settled month's workbook (every provider's, or one's). Up to
    `settings.EXPORT_INLINE_ROWS` services it is written at once and comes back `done` (or
    `failed`); a larger month comes back `queued` for a Celery worker (`tasks.run_settlement_export`),
    whose progress `selectors.export_progress` follows. The same workbook already queued or being
    written is returned rather than asked for twice.

    Refuses `not_permitted` for a user who may not see the month's statements (a provider's
    manager: only their own provider's workbook), `period_not_settled` and `not_found` (an unknown
    provider code) as `exports.export_settlement` does."""
    own = selectors.own_provider_id(user)
    if not selectors.can_view_settlements(user):
        provider = selectors.provider_by_id(provider_id=own) if own is not None else None
        if provider is None or provider_code != provider.code:
            raise BillingError("not_permitted", _("You may download only your own provider's statements."))
    provider = exports.check_exportable(month=month, provider_code=provider_code)
    with transaction.atomic():
        pending = (
            SettlementExport.objects.select_for_update()
            .filter(month=month, provider=provider, state__in=["queued", "running"])
            .first()
        )
        if pending is not None:
            return pending
        export = SettlementExport.objects.create(
            month=month,
            provider=provider,
            requested_by=user,
            rows_total=selectors.export_rows(month=month, provider_code=provider_code),
        )
        if export.rows_total > settings.EXPORT_INLINE_ROWS:
            from billing.tasks import run_settlement_export  # the tasks module imports this one

            # Through the outbox: sent on commit, or when the broker is back (a task delivered
            # twice finds its workbook taken).
            outbox.enqueue(run_settlement_export, export.pk)
            return export
    return finish_export(export_id=export.pk)


def _record_export_progress(export_id: int, done: int, total: int) -> None:
    from eligibility.services import record_progress

    record_progress(
        selectors.export_progress_key(export_id),
        (done, total),
        seconds=EXPORT_PROGRESS_SECONDS,
        log=_export_log,
        what=f"export {export_id}",
    )


def finish_export(*, export_id: int) -> SettlementExport:
    """Write a requested workbook to a temporary file, then to the exports storage, and record
    its name, size and figures; or record why it failed (`period_not_settled`, `not_found`, or
    `export_failed` for anything unexpected, logged). A workbook already taken by another worker
    or finished (a task delivered twice) is returned as it is."""
    taken = SettlementExport.objects.filter(pk=export_id, state=SettlementExport.State.QUEUED).update(
        state=SettlementExport.State.RUNNING
    )
    export = SettlementExport.objects.select_related("provider").get(pk=export_id)
    if not taken:
        return export
    provider_code = export.provider.code if export.provider_id else None
    handle, path = tempfile.mkstemp(prefix="settlement-", suffix=".xlsx")
    os.close(handle)
    try:
        summary = exports.export_settlement(
            month=export.month,
            out=path,
            provider_code=provider_code,
            progress=lambda done, total: _record_export_progress(export_id, done, total),
        )
        with open(path, "rb") as written:
            name = exports_storage().save(
                f"settlement/{export.month:%Y-%m}/{export.pk}-{export.download_name}", File(written)
            )
    except BillingError as error:
        export.state, export.outcome = SettlementExport.State.FAILED, {"code": error.code}
    except Exception:
        _export_log.exception("settlement workbook %s failed", export_id)
        export.state, export.outcome = SettlementExport.State.FAILED, {"code": "export_failed"}
    else:
        export.state, export.file_name = SettlementExport.State.DONE, name
        export.file_size = exports_storage().size(name)
        export.outcome = {
            "statements": summary.statements,
            "redemptions": summary.redemptions,
            "detail_rows": summary.detail_rows,
            "total_amount": str(summary.total_amount.amount),
            "government_total": str(summary.government_total.amount),
            "senior_total": str(summary.senior_total.amount),
        }
    finally:
        os.remove(path)
    export.finished_at = timezone.now()
    export.save(update_fields=["state", "file_name", "file_size", "outcome", "finished_at"])
    return export
