"""The care-visit pages (/visits/), phone-first: the month's picture, "my visits", a senior's care
page, the visit form, pairing, requirements and the three forms as workbooks.

Thin: seniors come through `selectors.visible_to` (outside it: 404), writes through `services`.
"""

import datetime as dt
import tempfile

from django.contrib import messages
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from carevisits import exports, selectors, services
from carevisits.errors import CareVisitError
from carevisits.forms import PairingForm, TemporaryRequirementForm, VisitForm, month_choices
from carevisits.models import VisitRecord
from config import pages
from config.i18n import name_in_language
from config.months import format_month, parse_month
from eligibility.models import Senior

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PER_PAGE = 50
REGISTRATION_SHEETS = 500  # one community's classed seniors, one sheet each

NO_VISITS = gettext_lazy(
    "Care visits are for community workers, officers and bureau administrators. "
    "Ask an administrator if you need access."
)
READ_ONLY = gettext_lazy("You can read care visits here but not record them.")


def requires(permission: str, reason=NO_VISITS):
    return pages.page_for(lambda user: user.has_perm(permission), reason)


def _month(request) -> dt.date:
    text = request.GET.get("month", "")
    today = timezone.localdate()
    try:
        month = parse_month(text) if text else today.replace(day=1)
    except ValueError:
        month = today.replace(day=1)
    return min(month, today.replace(day=1))


def _region(request):
    code = request.GET.get("region")
    if not code:
        return None
    return get_object_or_404(selectors.regions_for_picture(request.user), code=code)


def _senior(request, senior_id: int) -> Senior:
    seniors = selectors.visible_to(request.user).select_related("community__parent")
    return get_object_or_404(seniors, pk=senior_id)


def _workbook(write, filename: str) -> FileResponse:
    out = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it when the download ends
    write(out)
    out.seek(0)
    return FileResponse(out, as_attachment=True, filename=filename, content_type=XLSX)


# --- The month's picture ------------------------------------------------------------------------


@requires("carevisits.view_visitrecord")
def picture(request):
    month = _month(request)
    region = _region(request)
    result = selectors.monthly_picture(user=request.user, month=month, region=region)
    # The way down from the user's own region (the city for those who see it) to this one.
    scope = selectors.scope_path(request.user) or ""
    trail = []
    node = result.region
    while node is not None and node.path.startswith(scope):
        trail.insert(0, node)
        node = node.parent if node.parent_id else None
    context = {
        "picture": result,
        "month": month,
        "months": month_choices(timezone.localdate()),
        "trail": trail,
        "region_name": name_in_language(result.region) if result.region else _("The whole city"),
        "whole_city": scope == "",
        "drill": result.level != "community" or (result.region is None),
        "urgent": selectors.open_urgent_findings(user=request.user, limit=10),
        "may_set_rules": request.user.has_perm("carevisits.add_visitrequirement"),
        "may_record": request.user.has_perm("carevisits.add_visitrecord"),
    }
    return render(request, "carevisits/picture.html", context)


def _due(request, *, mine: bool):
    month = timezone.localdate().replace(day=1)
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        page = 1
    due = selectors.due_seniors(user=request.user, month=month, mine=mine, page=page, per_page=PER_PAGE)
    context = {
        "due": due,
        "mine": mine,
        "month": month,
        "may_record": request.user.has_perm("carevisits.add_visitrecord"),
    }
    return render(request, "carevisits/due.html", context)


@requires("carevisits.view_visitrecord")
def my_visits(request):
    return _due(request, mine=True)


@requires("carevisits.view_visitrecord")
def due_list(request):
    return _due(request, mine=False)


# --- One senior ---------------------------------------------------------------------------------


@requires("carevisits.view_visitrecord")
def senior_page(request, senior_id: int):
    senior = _senior(request, senior_id)
    context = {
        "senior": senior,
        "care": selectors.care_summary(senior=senior),
        "visits": selectors.visits_of(senior=senior, limit=50),
        "pairings": list(selectors.pairing_history(senior=senior)[:20]),
        "may_record": selectors.can_record(request.user, senior),
        "may_close": request.user.has_perm("carevisits.change_visitrecord"),
    }
    return render(request, "carevisits/senior.html", context)


@requires("carevisits.view_visitrecord")
@require_http_methods(["GET", "POST"])
def record_visit(request, senior_id: int):
    senior = _senior(request, senior_id)
    if not selectors.can_record(request.user, senior):
        return pages.forbidden(request, READ_ONLY)
    volunteers = selectors.volunteers_of(community=senior.community)
    form = VisitForm(request.POST or None, volunteers=volunteers)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            record = services.record_visit(senior=senior, by=request.user, **data)
        except CareVisitError as error:
            if error.code == "not_permitted":
                return pages.forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            if record.outcome == VisitRecord.Outcome.DECLINED:
                messages.success(request, _("The refusal is recorded."))
            else:
                messages.success(request, _("The visit is recorded."))
            return redirect(request.POST.get("next") or reverse("carevisits-mine"))
    context = {
        "senior": senior,
        "form": form,
        "care": selectors.care_summary(senior=senior),
        "next": request.GET.get("next") if _safe_next(request.GET.get("next")) else "",
    }
    return render(request, "carevisits/record.html", context, status=400 if request.method == "POST" else 200)


def _safe_next(url) -> bool:
    return bool(url) and url.startswith("/visits/") and "//" not in url


@requires("carevisits.view_visitrecord")
@require_http_methods(["GET", "POST"])
def pair(request, senior_id: int):
    senior = _senior(request, senior_id)
    if not (selectors.can_record(request.user, senior) and request.user.has_perm("carevisits.add_pairing")):
        return pages.forbidden(request, READ_ONLY)
    form = PairingForm(
        request.POST or None,
        workers=selectors.contact_candidates(community=senior.community),
        volunteers=selectors.volunteers_of(community=senior.community),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.pair_contact(senior=senior, by=request.user, **form.cleaned_data)
        except CareVisitError as error:
            form.add_service_error(error)
        else:
            messages.success(request, _("The contact person is saved."))
            return redirect("carevisits-senior", senior_id=senior.pk)
    context = {"senior": senior, "form": form, "care": selectors.care_summary(senior=senior)}
    return render(request, "carevisits/pair.html", context, status=400 if request.method == "POST" else 200)


@requires("carevisits.view_visitrecord")
@require_POST
def close_urgent(request, record_id: int):
    try:
        record = services.close_urgent_finding(record=record_id, by=request.user)
    except CareVisitError as error:
        if error.code == "not_found":  # outside the user's scope: not even confirmed to exist
            raise Http404 from error
        if error.code == "not_permitted":
            return pages.forbidden(request, error.detail)
        messages.error(request, error.detail)
        record = get_object_or_404(selectors.visits_visible_to(request.user), pk=record_id)
    else:
        messages.success(request, _("The urgent finding is closed."))
    return redirect("carevisits-senior", senior_id=record.senior_id)


# --- Requirements -------------------------------------------------------------------------------


@requires("carevisits.view_visitrequirement")
@require_http_methods(["GET", "POST"])
def requirements(request):
    may_add = request.user.has_perm("carevisits.add_visitrequirement") and selectors.registry.sees_whole_city(
        request.user
    )
    form = None
    if may_add:
        form = TemporaryRequirementForm(
            request.POST or None, regions=selectors.regions_for_picture(request.user)
        )
        if request.method == "POST" and form.is_valid():
            try:
                services.add_temporary_requirement(by=request.user, **form.cleaned_data)
            except CareVisitError as error:
                form.add_service_error(error)
            else:
                messages.success(request, _("The temporary rule is saved."))
                return redirect("carevisits-requirements")
    elif request.method == "POST":
        return pages.forbidden(
            request, _("Visit requirements are set by a bureau administrator of the whole city.")
        )
    context = {"rules": selectors.requirements_list(), "form": form, "today": timezone.localdate()}
    status = 400 if request.method == "POST" else 200
    return render(request, "carevisits/requirements.html", context, status=status)


# --- The three forms ----------------------------------------------------------------------------


@requires("carevisits.view_visitrecord")
def export_statistics(request):
    month = _month(request)
    region = _region(request)
    result, parents = selectors.statistics_picture(user=request.user, month=month, region=region)
    return _workbook(
        lambda out: exports.write_statistics(picture=result, out=out, parents=parents),
        f"care-visits-{format_month(month)}.xlsx",
    )


@requires("carevisits.view_visitrecord")
def export_registration(request, senior_id: int):
    senior = _senior(request, senior_id)
    full = selectors.registry.may_see_full_id_card_number(request.user)
    return _workbook(
        lambda out: exports.write_registration(seniors=[senior], out=out, full_id_card_numbers=full),
        f"care-registration-{senior.pk}.xlsx",
    )


@requires("carevisits.view_visitrecord")
def export_community_registration(request):
    """The registration forms of a community's classed seniors, one sheet each."""
    region = _region(request)
    if region is None or region.level != "community":
        raise Http404
    seniors = (
        selectors.visible_to(request.user)
        .filter(community=region)
        .select_related("community__parent")
        .order_by("name_initials", "id")[:REGISTRATION_SHEETS]
    )
    full = selectors.registry.may_see_full_id_card_number(request.user)
    return _workbook(
        lambda out: exports.write_registration(seniors=seniors, out=out, full_id_card_numbers=full),
        f"care-registration-{region.code}.xlsx",
    )


@requires("carevisits.view_visitrecord")
def export_senior_records(request, senior_id: int):
    senior = _senior(request, senior_id)
    records = VisitRecord.objects.filter(senior=senior).select_related(
        "senior__community__parent", "recorded_by", "volunteer"
    )
    return _workbook(
        lambda out: exports.write_records(records=records.order_by("visited_at"), out=out, title=senior.name),
        f"care-visits-senior-{senior.pk}.xlsx",
    )


@requires("carevisits.view_visitrecord")
def export_month_records(request):
    month = _month(request)
    region = _region(request)
    records = selectors.visits_in_month(user=request.user, month=month, region=region)
    return _workbook(
        lambda out: exports.write_records(records=records, out=out, title=format_month(month)),
        f"care-visit-records-{format_month(month)}.xlsx",
    )
