"""Pages for finance: settlement periods with their statements, and the Excel download."""

import io

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from billing import selectors
from billing.errors import BillingError
from billing.exports import export_settlement
from config.months import format_month, parse_month

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PERIODS_PER_PAGE = 12


def _forbidden(request):
    return render(request, "billing/forbidden.html", status=403)


@login_required
@require_GET
def periods(request):
    if not selectors.can_view_settlements(request.user):
        return _forbidden(request)
    page = Paginator(selectors.settlement_periods(user=request.user), PERIODS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "billing/periods.html", {"page": page})


@login_required
@require_GET
def export(request, period: str):
    if not selectors.can_view_settlements(request.user):
        return _forbidden(request)
    try:
        month = parse_month(period)
    except ValueError:
        raise Http404 from None
    provider_code = request.GET.get("provider") or None
    buffer = io.BytesIO()
    try:
        export_settlement(month=month, out=buffer, provider_code=provider_code)
    except BillingError as error:
        status = 404 if error.code == "not_found" else 409
        return render(request, "billing/refused.html", {"error": error}, status=status)
    suffix = f"-{provider_code}" if provider_code else ""
    response = HttpResponse(buffer.getvalue(), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="settlement-{format_month(month)}{suffix}.xlsx"'
    return response
