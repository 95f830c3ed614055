"""Pages for finance (and the bureau, and a provider's manager for their own statements): the
months with their state, a settled month by provider and tier, a statement with its lines,
adjustments and every service behind it, and the buttons of a statement's life: settle, review,
approve (a second finance user), paid. Thin: every read is a selector, every write a service."""

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from billing import selectors, services
from billing.errors import BillingError
from billing.models import SettlementPeriod, Statement, StatementLine
from config.months import format_month, local_date, month_bounds, parse_month
from config.pages import page_for

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REDEMPTIONS_PER_PAGE = 50
NOT_SETTLEMENTS = gettext_lazy(
    "Monthly settlements are for finance staff, the bureau and providers' managers (their own)."
)

# What each reconciliation check (billing.reconciliation) asks, in a finance user's words.
CHECK_LABELS = {
    "statements_add_up": gettext_lazy(
        "Each statement equals the sum of its lines, and of its services less voids plus adjustments"
    ),
    "within_validity": gettext_lazy("No service outside its voucher's month and validity"),
    "within_contract": gettext_lazy("No service outside the provider's contract"),
    "voucher_not_overspent": gettext_lazy("No voucher spent beyond its value"),
    "tier_within_face_value": gettext_lazy(
        "Per tier, the government's total is within face value × vouchers issued"
    ),
}

settlements_page = page_for(
    lambda user: selectors.can_view_settlements(user) or selectors.own_provider_id(user) is not None,
    NOT_SETTLEMENTS,
)


def _month(period: str) -> dt.date:
    try:
        return parse_month(period)
    except ValueError:
        raise Http404 from None


def _refused(request, error: BillingError) -> None:
    messages.error(request, error.detail)


def _month_is_over(month: dt.date) -> bool:
    return timezone.now() >= month_bounds(month)[1]


@settlements_page
@require_GET
def periods(request):
    """Every month, the current one so far first: state, services recorded and voided, amounts;
    the statements due for payment and overdue above them."""
    user = request.user
    rows = selectors.months(user=user)
    can_settle = selectors.can_settle(user)
    return render(
        request,
        "billing/months.html",
        {
            "rows": [
                {
                    "row": row,
                    "settleable": can_settle
                    and row.state == SettlementPeriod.State.OPEN
                    and _month_is_over(row.month),
                }
                for row in rows
            ],
            "overdue": list(selectors.overdue_statements(user=user)),
            "can_settle": can_settle,
        },
    )


@settlements_page
@require_GET
def period(request, period: str):
    """One month: its statements by provider, totals by tier, spend by provider and tier (chart and
    table), the reconciliation checks; before it is settled, what has been recorded so far."""
    month = _month(period)
    user = request.user
    summary = selectors.period_summary(user=user, month=month)
    row = selectors.month_row(user=user, month=month)
    if summary is None and row is None:
        raise Http404
    can_settle = selectors.can_settle(user)
    approved = summary is not None and any(
        s.state in (Statement.State.APPROVED, Statement.State.PAID) for s in summary.statements
    )
    locked = summary is not None and summary.period.state == SettlementPeriod.State.LOCKED
    today = local_date(timezone.now())
    chart = _chart_data(summary) if summary else None
    own = None if selectors.can_view_settlements(user) else selectors.own_provider_id(user)
    context = {
        "month": month,
        "summary": summary,
        "row": row,
        "over": _month_is_over(month),
        "can_settle": can_settle and _month_is_over(month) and not approved and not locked,
        "resettle": summary is not None,
        "today": today,
        "checks": [
            {
                "check": check,
                "label": CHECK_LABELS.get(check.code, check.code),
                "rows": selectors.rows_behind(check=check) if check.status != "passed" else [],
            }
            for check in (summary.checks if summary else [])
        ],
        "chart": chart,
        "own_provider_code": selectors.provider_by_id(provider_id=own).code if own is not None else None,
        "exports": selectors.recent_exports(user=user, month=month, provider_id=own) if summary else [],
        "spend_rows": [
            {"provider": provider, "values": [d["data"][i] for d in chart["datasets"]]}
            for i, provider in enumerate(chart["labels"])
        ]
        if chart
        else [],
    }
    return render(request, "billing/period.html", context)


def _chart_data(summary) -> dict:
    """Spend by provider (bars) and tier (stacks), as the chart script reads it; the page shows
    the same figures as a table beside it."""
    providers = sorted({row["provider_name"] for row in summary.spend})
    names = {row["tier_code"]: row["tier_name"] for row in summary.tiers}
    tiers = sorted({row["tier_code"] for row in summary.spend})
    amounts = {(row["provider_name"], row["tier_code"]): row["amount"] for row in summary.spend}
    return {
        "labels": providers,
        "datasets": [
            {
                "label": names.get(tier, tier),
                "data": [str(_amount(amounts.get((provider, tier)))) for provider in providers],
            }
            for tier in tiers
        ],
        "currency": "¥",
    }


def _amount(value):
    if value is None:
        return "0.00"
    value = getattr(value, "amount", value)
    return f"{value:.2f}"


@settlements_page
@require_POST
def settle(request, period: str):
    month = _month(period)
    try:
        result = services.settle(month=month, by=request.user)
    except BillingError as error:
        _refused(request, error)
    else:
        messages.success(
            request,
            _(
                "%(month)s is closed and its %(count)s statements are drafted: review each, then a second "
                "finance user approves it."
            )
            % {"month": format_month(month), "count": len(result.statements)},
        )
    return redirect("billing-period", period=format_month(month))


def _statement_or_404(request, statement_id: int) -> Statement:
    statement = selectors.statement_detail(user=request.user, statement_id=statement_id)
    if statement is None:
        raise Http404
    return statement


class ReviewForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Review note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("What you checked, or what the approver should know (optional)."),
    )


class PaymentForm(forms.Form):
    reference = forms.CharField(
        label=gettext_lazy("Payment reference"),
        max_length=100,
        help_text=gettext_lazy("The bank transfer's reference or voucher number."),
    )
    paid_on = forms.DateField(
        label=gettext_lazy("Paid on"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )


def _steps(statement: Statement) -> list[dict]:
    """The statement's life as a page shows it: each step, who and when (None: not yet)."""

    def name(user):
        return (user.get_full_name() or user.get_username()) if user else None

    prepared = name(statement.prepared_by) or statement.prepared_by_job
    return [
        {"label": _("Prepared"), "who": prepared, "when": statement.prepared_at},
        {"label": _("Reviewed"), "who": name(statement.reviewed_by), "when": statement.reviewed_at},
        {"label": _("Approved"), "who": name(statement.approved_by), "when": statement.approved_at},
        {"label": _("Paid"), "who": name(statement.paid_by), "when": statement.paid_at},
    ]


@settlements_page
@require_GET
def statement(request, statement_id: int):
    statement = _statement_or_404(request, statement_id)
    user = request.user
    can_act = selectors.can_settle(user) and statement.period.state != SettlementPeriod.State.LOCKED
    today = local_date(timezone.now())
    names = selectors.tier_names()
    lines = list(statement.lines.all())
    for line in lines:
        line.tier_name = names.get(line.tier_code, line.tier_code)
    return render(
        request,
        "billing/statement.html",
        {
            "statement": statement,
            "lines": [line for line in lines if line.kind == StatementLine.Kind.SERVICE],
            "adjustment_lines": [line for line in lines if line.kind != StatementLine.Kind.SERVICE],
            "adjustments": statement.adjustments,
            "steps": _steps(statement),
            "can_review": can_act and statement.state == Statement.State.DRAFT,
            "can_approve": can_act and statement.state == Statement.State.REVIEWED,
            "own_preparation": statement.prepared_by_id == user.pk,
            "can_pay": can_act and statement.state == Statement.State.APPROVED,
            "review_form": ReviewForm(),
            "payment_form": PaymentForm(initial={"paid_on": today}),
            "overdue": statement.state == Statement.State.APPROVED
            and statement.due_date is not None
            and statement.due_date < today,
            "exports": selectors.recent_exports(
                user=user, month=statement.period.month, provider_id=statement.provider_id
            ),
        },
    )


def _back_to(statement_id: int):
    return redirect("billing-statement", statement_id=statement_id)


@settlements_page
@require_POST
def review(request, statement_id: int):
    _statement_or_404(request, statement_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("A review note is at most 2,000 characters."))
        return _back_to(statement_id)
    try:
        services.review_statement(statement_id=statement_id, by=request.user, note=form.cleaned_data["note"])
    except BillingError as error:
        _refused(request, error)
    else:
        messages.success(request, _("Reviewed. Another finance user can now approve it."))
    return _back_to(statement_id)


@settlements_page
@require_POST
def approve(request, statement_id: int):
    _statement_or_404(request, statement_id)
    try:
        approved = services.approve_statement(statement_id=statement_id, by=request.user)
    except BillingError as error:
        _refused(request, error)
    else:
        messages.success(
            request,
            _("Approved. Payment is due by %(date)s.") % {"date": approved.due_date.isoformat()},
        )
    return _back_to(statement_id)


@settlements_page
@require_POST
def pay(request, statement_id: int):
    _statement_or_404(request, statement_id)
    form = PaymentForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give the payment's reference and its date."))
        return _back_to(statement_id)
    try:
        services.mark_paid(
            statement_id=statement_id,
            by=request.user,
            reference=form.cleaned_data["reference"],
            paid_on=form.cleaned_data["paid_on"],
        )
    except BillingError as error:
        _refused(request, error)
    else:
        messages.success(request, _("The payment is recorded."))
    return _back_to(statement_id)


class RedemptionFilter(forms.Form):
    state = forms.ChoiceField(
        label=gettext_lazy("Services"),
        required=False,
        choices=[
            ("", gettext_lazy("All, voided included")),
            ("paid", gettext_lazy("Not voided")),
            ("voided", gettext_lazy("Voided")),
        ],
    )
    item = forms.ChoiceField(label=gettext_lazy("Service item"), required=False)
    tier = forms.ChoiceField(label=gettext_lazy("Tier"), required=False)
    day = forms.DateField(
        label=gettext_lazy("Day"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, statement, tier_names, **kwargs):
        super().__init__(*args, **kwargs)
        lines = list(statement.lines.all())
        items = {line.service_item.code: line.service_item.name for line in lines}
        tiers = sorted({line.tier_code for line in lines})
        self.fields["item"].choices = [("", _("All")), *sorted(items.items(), key=lambda kv: kv[1])]
        self.fields["tier"].choices = [
            ("", _("All")),
            *((code, tier_names.get(code, code)) for code in tiers),
        ]


@settlements_page
@require_GET
def statement_redemptions(request, statement_id: int):
    """Every service behind a statement, voided ones shown as voided; filterable, paginated."""
    statement = _statement_or_404(request, statement_id)
    names = selectors.tier_names()
    form = RedemptionFilter(request.GET or None, statement=statement, tier_names=names)
    filters = form.cleaned_data if form.is_valid() else {}
    state = filters.get("state")
    rows = selectors.statement_redemptions(
        statement=statement,
        voided={"paid": False, "voided": True}.get(state),
        service_item_code=filters.get("item") or None,
        tier_code=filters.get("tier") or None,
        served_on=filters.get("day"),
    )
    page = Paginator(rows, REDEMPTIONS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "billing/redemptions.html",
        {
            "statement": statement,
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "tier_names": names,
        },
    )


def _export_provider_code(request, asked: str | None) -> str | None:
    """The provider whose workbook is asked for: as asked for finance and the bureau; a provider's
    manager always their own (asking for another's is not found)."""
    if selectors.can_view_settlements(request.user):
        return asked or None
    provider = selectors.provider_by_id(provider_id=selectors.own_provider_id(request.user))
    if asked not in (None, "", provider.code):
        raise Http404
    return provider.code


@settlements_page
@require_POST
def export_start(request, period: str):
    """Ask for the month's workbook (one provider's with `provider`): written at once for a small
    month, by a worker for a large one; either way the workbook's own page follows."""
    month = _month(period)
    provider_code = _export_provider_code(request, request.POST.get("provider"))
    try:
        export = services.request_export(month=month, user=request.user, provider_code=provider_code)
    except BillingError as error:
        status = 404 if error.code == "not_found" else 409
        return render(request, "billing/refused.html", {"error": error}, status=status)
    return redirect("billing-export", export_id=export.pk)


EXPORT_FAILURES = {
    "period_not_settled": gettext_lazy(
        "The month is no longer settled: settle it again, then ask for the workbook."
    ),
    "not_found": gettext_lazy("The provider no longer exists."),
    "export_failed": gettext_lazy(
        "The workbook could not be written because of an unexpected error. Please try again; if it fails again, tell the system administrator."
    ),
}


@settlements_page
@require_GET
def export(request, export_id: int):
    """A workbook: its progress while a worker writes it (the page reloads itself), then the
    download, or why it failed."""
    export = selectors.export_for(user=request.user, export_id=export_id)
    if export is None:
        raise Http404
    done, total = selectors.export_progress(export=export)
    running = export.state in (export.State.QUEUED, export.State.RUNNING)
    return render(
        request,
        "billing/export.html",
        {
            "export": export,
            "running": running,
            "done": done,
            "total": total,
            "percent": int(done * 100 / total) if total else 0,
            "failure": EXPORT_FAILURES.get(export.outcome.get("code", ""), EXPORT_FAILURES["export_failed"])
            if export.state == export.State.FAILED
            else None,
        },
    )


@settlements_page
@require_GET
def export_download(request, export_id: int):
    """The workbook's file, streamed from the exports storage."""
    export = selectors.export_for(user=request.user, export_id=export_id)
    if export is None or export.state != export.State.DONE:
        raise Http404
    try:
        handle = services.exports_storage().open(export.file_name, "rb")
    except FileNotFoundError:
        raise Http404 from None
    return FileResponse(handle, as_attachment=True, filename=export.download_name, content_type=XLSX)
