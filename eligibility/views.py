"""The registry pages (/registry/): find, read, register, edit and import seniors, phone-first.

Thin: every senior comes through `selectors.visible_to` (a senior outside it is a 404), every
write through `services`. Nothing personal goes in a URL (DESIGN.md §8): a search is POSTed,
kept in the session under a random key, and the list is then a GET with `?s=<key>` and filters.
"""

import datetime as dt
import io
import secrets
import tempfile
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import BooleanField, DateField, QuerySet
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config import pages
from config.i18n import name_in_language
from eligibility import importer, selectors, services
from eligibility.errors import EligibilityError
from eligibility.exports import export_registry
from eligibility.forms import (
    FILTER_NAMES,
    ImportForm,
    RegistryFilterForm,
    RegistrySearchForm,
    SeniorForm,
    StatusForm,
    field_label,
)
from eligibility.models import ImportJob, PolicyRule, Region, Senior, mask_id_card_number
from eligibility.panels import render_senior_panels

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PER_PAGE = 50
HISTORY_SHOWN = 50
SEARCHES_KEPT = 10
SEARCH_SESSION_KEY = "registry_searches"

NO_REGISTRY = gettext_lazy(
    "The senior registry is for community workers, officers and bureau administrators. "
    "Ask an administrator if you need access."
)
READ_ONLY = gettext_lazy(
    "You can read the registry but not change it. Ask a community worker to make the change."
)
NO_IMPORT = gettext_lazy("Importing seniors is for community workers and bureau administrators.")


def forbidden(request, reason=NO_REGISTRY):
    return pages.forbidden(request, reason)


def requires(permission: str, reason=NO_REGISTRY):
    """Sign-in required; without `permission`, the friendly 403 page saying why."""
    return pages.page_for(lambda user: user.has_perm(permission), reason)


def _visible_senior(request, senior_id: int) -> Senior:
    seniors = selectors.visible_to(request.user).select_related("community__parent", "created_by")
    return get_object_or_404(seniors, pk=senior_id)


# --- The list -------------------------------------------------------------------------------------


def _remember_search(request, query: str) -> str:
    """Keep the query in the session under a new random key (the last few only)."""
    searches = request.session.get(SEARCH_SESSION_KEY, {})
    key = secrets.token_urlsafe(6)
    searches[key] = query
    request.session[SEARCH_SESSION_KEY] = dict(list(searches.items())[-SEARCHES_KEPT:])
    return key


def _remembered_search(request) -> tuple[str, bool]:
    """(query, expired): the query of `?s=`, and whether a key was given that is no longer known."""
    key = request.GET.get("s")
    if not key:
        return "", False
    query = request.session.get(SEARCH_SESSION_KEY, {}).get(key)
    return (query, False) if query is not None else ("", True)


def _list_params(*, key: str | None, filters: dict, page: int | None = None) -> str:
    params = {**({"s": key} if key else {}), **filters, **({"page": page} if page and page > 1 else {})}
    return urlencode(params)


def _filtered_seniors(request, form: RegistryFilterForm, query: str) -> QuerySet[Senior]:
    """The user's seniors, narrowed by the form's filters and the query."""
    return selectors.search(form.apply(selectors.visible_to(request.user)), query)


@require_http_methods(["GET", "POST"])
@requires("eligibility.view_senior")
def registry_list(request):
    communities = selectors.communities_visible_to(request.user)
    if request.method == "POST":
        form = RegistrySearchForm(request.POST, communities=communities)
        if form.is_valid():
            query = form.cleaned_data["q"]
            key = _remember_search(request, query) if query else None
            filters = {name: value for name, value in form.cleaned_data.items() if name != "q" and value}
            return redirect(f"{reverse('registry-list')}?{_list_params(key=key, filters=filters)}")
        # An invalid search (three digits): the form again, with its error, and no list.
        return render(request, "registry/list.html", {"form": form, "page": None}, status=400)

    query, expired = _remembered_search(request)
    # One bound form both narrows the list and shows the query and filters in use.
    filter_data = {name: request.GET[name] for name in FILTER_NAMES if name in request.GET}
    form = RegistrySearchForm({"q": query, **filter_data}, communities=communities)
    filters = form.filters()
    seniors = _filtered_seniors(request, form, query)
    rows = selectors.with_current_determination(seniors.select_related("community")).order_by(
        "community__path", "name_initials", "id"
    )
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    key = request.GET.get("s") if query else None
    context = {
        "form": form,
        "page": page,
        "query": query,
        "expired": expired,
        "filtered": bool(query or filters),
        "previous_url": _list_params(key=key, filters=filters, page=page.number - 1)
        if page.has_previous()
        else None,
        "next_url": _list_params(key=key, filters=filters, page=page.number + 1) if page.has_next() else None,
        "export_params": _list_params(key=key, filters=filters),
        "can_add": request.user.has_perm("eligibility.add_senior") and bool(form.communities),
        "can_import": request.user.has_perm("eligibility.import_seniors"),
    }
    return render(request, "registry/list.html", context)


@require_http_methods(["GET", "POST"])
@requires("eligibility.view_senior")
def registry_export(request):
    """The filtered list as a workbook: GET with the list's `?s=` key and filters, or a POST of
    the list's form (the query then never touches the session)."""
    if request.method == "POST":
        form = RegistrySearchForm(request.POST, communities=selectors.communities_visible_to(request.user))
        if not form.is_valid():
            return render(request, "registry/list.html", {"form": form, "page": None}, status=400)
        seniors = _filtered_seniors(request, form, form.cleaned_data["q"])
    else:
        query, _expired = _remembered_search(request)
        form = RegistryFilterForm(request.GET, communities=selectors.communities_visible_to(request.user))
        seniors = _filtered_seniors(request, form, query)
    out = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it when the download ends
    export_registry(
        seniors=seniors,
        out=out,
        full_id_card_numbers=selectors.may_see_full_id_card_number(request.user),
    )
    out.seek(0)
    filename = f"registry-{timezone.localdate():%Y%m%d}.xlsx"
    return FileResponse(out, as_attachment=True, filename=filename, content_type=XLSX)


# --- A senior's page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    label: str
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    when: dt.datetime
    who: str
    kind: str  # registered | changed | status
    changes: list[Change]


HISTORY_HIDDEN = ["created_at", "created_by"]
# The senior's own fields on their page, labelled as the model names them.
SHOWN_FIELDS = (
    "id_card_number",
    "sex",
    "birth_date",
    "community",
    "status_date",
    "created_at",
    *services.CONTACT_FIELDS,
)


def _shown_value(name: str, value, regions: dict[int, str]) -> str:
    """A historical value as a person reads it: masked ID, choice labels, 是/否, region names."""
    if value is None or value == "":
        return "—"
    if name == "id_card_number":
        return mask_id_card_number(value)
    if name == "community":
        return regions.get(value, str(value))
    field = Senior._meta.get_field(name)
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, BooleanField):
        return _("Yes") if value else _("No")
    if isinstance(field, DateField):
        return formats.date_format(value, "Y-m-d")
    return str(value)


def senior_history(senior: Senior) -> list[HistoryEntry]:
    """The senior's changes, newest first: who, when, and each field's old → new value."""
    records = list(senior.history.select_related("history_user").order_by("history_date", "history_id"))
    community_ids = {record.community_id for record in records}
    regions = dict(Region.objects.filter(pk__in=community_ids).values_list("pk", "name"))
    entries = []
    previous = None
    for record in records:
        user = record.history_user
        who = (user.get_full_name() or user.get_username()) if user else _("the system")
        if previous is None:
            entries.append(HistoryEntry(record.history_date, who, "registered", []))
        else:
            delta = record.diff_against(previous, excluded_fields=HISTORY_HIDDEN)
            changes = [
                Change(
                    label=field_label(change.field),
                    old=_shown_value(change.field, change.old, regions),
                    new=_shown_value(change.field, change.new, regions),
                )
                for change in delta.changes
            ]
            if changes:
                kind = "status" if (record.history_change_reason or "").startswith("status:") else "changed"
                entries.append(HistoryEntry(record.history_date, who, kind, changes))
        previous = record
    entries.reverse()
    return entries[:HISTORY_SHOWN]


def _facts(senior: Senior) -> list[tuple[str, str]]:
    choices = [
        (field_label(name), getattr(senior, f"get_{name}_display")()) for name in services.CHOICE_FACTS
    ]
    flags = [
        (field_label(name), _("Yes") if getattr(senior, name) else _("No")) for name in services.FLAG_FACTS
    ]
    return choices + flags


def _determination(senior: Senior) -> dict | None:
    determination = selectors.current_determination(senior=senior)
    if determination is None:
        return None
    rules = {
        rule.code: rule
        for rule in PolicyRule.objects.select_related("tier").filter(
            policy=determination.policy, code__in=determination.matched_rules
        )
    }
    # The rule that gave the tier first: most favourable tier, then the others.
    codes = sorted(
        determination.matched_rules,
        key=lambda code: rules[code].tier.rank if code in rules and rules[code].tier else 99,
    )
    reasons = [
        {
            "text": rules[code].label_in_language if code in rules else code,
            "tier": name_in_language(rules[code].tier) if code in rules and rules[code].tier else None,
            "care": code in rules and not rules[code].tier_id,
        }
        for code in codes
    ]
    return {
        "tier": name_in_language(determination.tier) if determination.tier else None,
        "care_class": determination.care_visit_class,
        "care_class_label": determination.get_care_visit_class_display(),
        "as_of": determination.as_of,
        "policy": determination.policy,
        "tier_reasons": [reason for reason in reasons if not reason["care"]],
        "care_reasons": [reason for reason in reasons if reason["care"]],
    }


@require_GET
@requires("eligibility.view_senior")
def senior_detail(request, senior_id: int):
    senior = _visible_senior(request, senior_id)
    full_id = selectors.may_see_full_id_card_number(request.user)
    context = {
        "senior": senior,
        "id_card_number": senior.id_card_number if full_id else senior.masked_id_card_number,
        "facts": _facts(senior),
        "determination": _determination(senior),
        "panels": render_senior_panels(request, senior),
        "history": senior_history(senior),
        "can_change": selectors.can_change(request.user, senior),
        "age": services.age_on(senior.birth_date, timezone.localdate()),
        "labels": {name: field_label(name) for name in SHOWN_FIELDS},
    }
    return render(request, "registry/senior.html", context)


# --- Register, edit, status -----------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires("eligibility.add_senior", READ_ONLY)
def senior_create(request):
    communities = selectors.communities_visible_to(request.user)
    if not communities.exists():
        return forbidden(request, _("Your account has no community yet. Ask an administrator to assign one."))
    form = SeniorForm(request.POST or None, communities=communities)
    if request.method == "POST" and form.is_valid():
        values = form.values()
        if not selectors.can_register_in(request.user, values["community"]):
            return forbidden(request, READ_ONLY)
        try:
            senior = services.register_senior(created_by=request.user, **values)
        except EligibilityError as error:
            form.add_service_error(error)
        else:
            messages.success(request, _("%(name)s is registered.") % {"name": senior.name})
            return redirect("registry-senior", senior_id=senior.pk)
    status = 400 if form.is_bound else 200
    return render(request, "registry/form.html", {"form": form, "senior": None}, status=status)


def _changeable_senior(request, senior_id: int) -> Senior | None:
    """The senior, if the user may change them; 404 outside their scope, None (→ 403) when read-only."""
    senior = _visible_senior(request, senior_id)
    return senior if selectors.can_change(request.user, senior) else None


@require_http_methods(["GET", "POST"])
@requires("eligibility.view_senior")
def senior_edit(request, senior_id: int):
    senior = _changeable_senior(request, senior_id)
    if senior is None:
        return forbidden(request, READ_ONLY)
    form = SeniorForm(
        request.POST or None, communities=selectors.communities_visible_to(request.user), senior=senior
    )
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.update_senior(senior=senior, by=request.user, **form.values())
        except EligibilityError as error:
            form.add_service_error(error)
        else:
            if changed:
                messages.success(request, _("Saved."))
            else:
                messages.info(request, _("Nothing was changed."))
            return redirect("registry-senior", senior_id=senior.pk)
    status = 400 if form.is_bound else 200
    return render(request, "registry/form.html", {"form": form, "senior": senior}, status=status)


@require_http_methods(["GET", "POST"])
@requires("eligibility.view_senior")
def senior_status(request, senior_id: int):
    """Two steps: the choice and date, then a confirmation that says what happens to the voucher."""
    senior = _changeable_senior(request, senior_id)
    if senior is None:
        return forbidden(request, READ_ONLY)
    form = StatusForm(request.POST or None, senior=senior)
    confirming = False
    if request.method == "POST" and form.is_valid():
        status, on = form.cleaned_data["status"], form.cleaned_data["status_date"]
        if form.cleaned_data["confirmed"]:
            try:
                services.change_senior_status(senior=senior, status=status, on=on, by=request.user)
            except EligibilityError as error:
                form.add_service_error(error)
            else:
                messages.success(
                    request,
                    _("The status is now: %(status)s.") % {"status": senior.get_status_display()},
                )
                return redirect("registry-senior", senior_id=senior.pk)
        else:
            confirming = True
    context = {
        "form": form,
        "senior": senior,
        "confirming": confirming,
        "leaving": form.is_valid() and form.cleaned_data["status"] != Senior.Status.ACTIVE,
        "new_status_label": dict(Senior.Status.choices).get(form.cleaned_data["status"])
        if form.is_valid()
        else None,
    }
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "registry/status.html", context, status=status)


# --- Import ---------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires("eligibility.import_seniors", NO_IMPORT)
def import_upload(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["workbook"]
        try:
            job = services.start_import(
                data=upload.read(),
                filename=upload.name,
                user=request.user,
                dry_run=form.cleaned_data["dry_run"],
            )
        except EligibilityError as error:
            form.add_error("workbook", error.detail)
        else:
            return redirect("registry-import-job", job_id=job.pk)
    jobs = selectors.import_jobs_visible_to(request.user).select_related("created_by")[:10]
    status = 400 if form.is_bound else 200
    return render(request, "registry/import.html", {"form": form, "jobs": jobs}, status=status)


def _visible_job(request, job_id: int) -> ImportJob | None:
    """The job if the user may see it and import (404 for another's job, as for a senior
    outside one's scope; None → 403 for one's own job once the permission is gone)."""
    job = get_object_or_404(selectors.import_jobs_visible_to(request.user), pk=job_id)
    return job if request.user.has_perm("eligibility.import_seniors") else None


@require_GET
@login_required
@never_cache
def import_job(request, job_id: int):
    job = _visible_job(request, job_id)
    if job is None:
        return forbidden(request, NO_IMPORT)
    running = job.state in (ImportJob.State.QUEUED, ImportJob.State.RUNNING)
    context = {"job": job, "running": running}
    if running:
        done, total = selectors.import_progress(job=job)
        context.update(done=done, total=total)
    else:
        context["report"] = importer.ImportReport.from_json(job.report)
    return render(request, "registry/import_job.html", context)


@login_required
@never_cache
@require_POST
def import_confirm(request, job_id: int):
    """After a clean dry run: import the same workbook (kept with the job), no second upload."""
    job = _visible_job(request, job_id)
    if job is None:
        return forbidden(request, NO_IMPORT)
    try:
        imported = services.confirm_import(job=job, user=request.user)
    except EligibilityError as error:
        messages.error(request, error.detail)
        return redirect("registry-import-job", job_id=job.pk)
    return redirect("registry-import-job", job_id=imported.pk)


@require_GET
@login_required
@never_cache
def import_annotated(request, job_id: int):
    job = _visible_job(request, job_id)
    if job is None:
        return forbidden(request, NO_IMPORT)
    if not job.annotated_workbook:
        # A job without errors has no marked-up copy: its page says how it went.
        return redirect("registry-import-job", job_id=job.pk)
    response = HttpResponse(bytes(job.annotated_workbook), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-checked.xlsx"'
    return response


@require_GET
@requires("eligibility.import_seniors", NO_IMPORT)
def import_template(request):
    buffer = io.BytesIO()
    # A worker's template shows their own community's code in the example rows.
    communities = selectors.communities_visible_to(request.user)
    own = communities.first() if communities[:2].count() == 1 else None
    importer.write_template(buffer, **({"community_code": own.code} if own else {}))
    response = HttpResponse(buffer.getvalue(), content_type=XLSX)
    response["Content-Disposition"] = 'attachment; filename="registry-template.xlsx"'
    return response
