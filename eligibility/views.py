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
from django.db.models import BooleanField, DateField, F, QuerySet
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config import pages
from config.i18n import in_language, name_in_language
from config.months import next_month
from eligibility import conditions, importer, selectors, services
from eligibility.errors import EligibilityError
from eligibility.exports import export_registry
from eligibility.forms import (
    FILTER_NAMES,
    EndTierOverrideForm,
    ImportForm,
    RegistryFilterForm,
    RegistrySearchForm,
    SeniorForm,
    StatusForm,
    TierOverrideForm,
    field_label,
)
from eligibility.models import (
    Determination,
    ImportJob,
    Policy,
    PolicyRule,
    Region,
    Senior,
    Tier,
    TierOverride,
    mask_id_card_number,
)
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
    rows = (
        selectors.with_current_determination(seniors.select_related("community"))
        # A manual tier is marked as one (the same join as the tier's).
        .annotate(current_override_id=F("current__override_id"))
        .order_by("community__path", "name_initials", "id")
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
        # The printed cards of this month or the next (a GET form; the vouchers app answers).
        "card_months": _card_months() if request.user.has_perm("vouchers.view_voucher") else [],
    }
    return render(request, "registry/list.html", context)


def _card_months() -> list[dt.date]:
    month = timezone.localdate().replace(day=1)
    return [month, next_month(month)]


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


# --- The "why" panel: the stored determination, and today's reasons in plain words -------------


@dataclass(frozen=True)
class ShownRule:
    """One rule as the panel shows it: its label, what it grants, the condition in plain words
    (only where it says more than the label), and the checks that decided it ("年龄 82 ≥ 80")."""

    code: str
    label: str
    grants: str
    words: str
    checks: list[str]
    holds_today: bool = True


@dataclass
class WhyPanel:
    determination: Determination | None
    tier_name: str | None  # the stored tier (None: no tier)
    care_class: str
    care_class_label: str
    policy_name: str
    determined_by: str
    tier_rules: list[ShownRule]
    care_rules: list[ShownRule]
    override: TierOverride | None  # the manual tier the stored determination comes from
    override_tier_name: str
    override_set_by: str
    rule_tier_name: str | None  # what the matched rules alone give (shown beside an override)
    policy: Policy | None  # in force today
    current_policy_name: str
    explained: bool  # today's facts were run through the rules (a policy is in force)
    in_population: bool
    population_words: str
    today_outcome: str | None  # what the rules give today, where it differs from what is stored
    other_policy: bool  # determined under another policy than the one in force
    nearest: list[ShownRule]  # for a worker: the nearest rules of a better tier not met
    show_nearest: bool
    stranded_override: TierOverride | None  # an open manual tier the policy in force cannot apply
    stranded_tier_name: str


def _care_label(care_class: str) -> str:
    return _("Class %(class)s") % {"class": care_class}


def _policy_name(policy) -> str:
    return _("%(name)s (version %(version)s)") % {
        "name": in_language(policy.name, policy.name_en),
        "version": policy.version,
    }


def _person(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else "—"


def _outcome_words(tier_name: str | None, care_class: str) -> str:
    tier = tier_name or _("no tier")
    if not care_class:
        return tier
    return _("%(tier)s, care-visit class %(class)s") % {"tier": tier, "class": care_class}


def _beyond(words: str, label: str) -> str:
    """The condition's words where they say more than the rule's label, else nothing."""
    return "" if words.strip().casefold() == label.strip().casefold() else words


def _shown(verdict: selectors.RuleVerdict) -> ShownRule:
    rule = verdict.rule
    label = rule.label_in_language
    return ShownRule(
        code=rule.code,
        label=label,
        grants=name_in_language(rule.tier) if rule.tier else _care_label(rule.care_visit_class),
        words=_beyond(verdict.words, label),
        checks=verdict.checks,
        holds_today=verdict.holds,
    )


def _stored_rule(rule: PolicyRule) -> ShownRule:
    """A matched rule of another policy than the one in force (a determination made before a new
    version took over): its words, but no checks, as today's explanation does not run it."""
    label = rule.label_in_language
    return ShownRule(
        code=rule.code,
        label=label,
        grants=name_in_language(rule.tier) if rule.tier else _care_label(rule.care_visit_class),
        words=_beyond(conditions.describe(rule.condition), label),
        checks=[],
    )


def _matched_rules(determination: Determination, verdicts: dict) -> tuple[list[ShownRule], list[ShownRule]]:
    """(tier rules, care rules) the determination records as matched, the rule of the most
    favourable tier first; checked against today's facts where the policy in force holds them."""
    codes = list(determination.matched_rules)
    missing = [code for code in codes if code not in verdicts]
    stored = {
        rule.code: rule
        for rule in PolicyRule.objects.select_related("tier").filter(
            policy=determination.policy, code__in=missing
        )
    }
    rules = []
    for code in codes:
        if code in verdicts:
            rules.append((verdicts[code].rule, _shown(verdicts[code])))
        elif code in stored:
            rules.append((stored[code], _stored_rule(stored[code])))
        else:  # a code no policy holds any more stands for itself
            rules.append((None, ShownRule(code, code, "", "", [])))
    rules.sort(key=lambda pair: (pair[0].tier.rank if pair[0] and pair[0].tier else 99, pair[1].code))
    tier_rules = [shown for rule, shown in rules if rule is None or rule.tier_id]
    care_rules = sorted(
        (shown for rule, shown in rules if rule is not None and not rule.tier_id),
        key=lambda shown: (shown.grants, shown.code),
    )
    return tier_rules, care_rules


def _determined_by(determination: Determination) -> str:
    if determination.determined_by_id:
        return _person(determination.determined_by)
    return determination.determined_by_job or _("the system")


def why_panel(
    senior: Senior, *, today: dt.date, worker: bool, open_override: TierOverride | None
) -> WhyPanel:
    """The tier and class as stored in the current determination, each matched rule in plain
    words with the checks that decide it on `today`, and for a worker the nearest rule of a
    more favourable tier not met. The stored determination stays the source of the tier shown."""
    determination = selectors.current_determination(senior=senior)
    active = senior.status == Senior.Status.ACTIVE
    explanation = selectors.explain_senior(senior=senior, as_of=today) if active else None
    policy = (
        explanation.policy if explanation else (selectors.policy_in_force(as_of=today) if active else None)
    )
    verdicts = (
        {v.rule.code: v for v in [*explanation.tier_rules, *explanation.care_rules]} if explanation else {}
    )

    tier_rules, care_rules = _matched_rules(determination, verdicts) if determination else ([], [])
    override = rule_tier_name = None
    if determination is not None and determination.override_id:
        override = TierOverride.objects.select_related("created_by").get(pk=determination.override_id)
        # The rules alone: the most favourable tier among the matched rules (shown first).
        rule_tier_name = tier_rules[0].grants if tier_rules and tier_rules[0].grants else None

    today_outcome = None
    if explanation is not None:
        today_tier = name_in_language(explanation.tier) if explanation.tier else None
        stored_tier = name_in_language(determination.tier) if determination and determination.tier else None
        stored_care = determination.care_visit_class if determination else ""
        if (today_tier, explanation.care_class) != (stored_tier, stored_care) and (
            today_tier or explanation.care_class or determination
        ):
            today_outcome = _outcome_words(today_tier, explanation.care_class)

    nearest = []
    if worker and explanation is not None:
        nearest = [_shown(verdict) for verdict in explanation.nearest_rules]

    # An open manual tier in its window that the policy in force has no tier for does not apply.
    stranded = (
        open_override
        if explanation is not None
        and explanation.override is None
        and open_override is not None
        and open_override.starts_on <= today <= open_override.expires_on
        else None
    )

    return WhyPanel(
        determination=determination,
        tier_name=name_in_language(determination.tier) if determination and determination.tier else None,
        care_class=determination.care_visit_class if determination else "",
        care_class_label=determination.get_care_visit_class_display() if determination else "",
        policy_name=_policy_name(determination.policy) if determination else "",
        determined_by=_determined_by(determination) if determination else "",
        tier_rules=tier_rules,
        care_rules=care_rules,
        override=override,
        override_tier_name=name_in_language(determination.tier) if override and determination.tier else "",
        override_set_by=_person(override.created_by) if override else "",
        rule_tier_name=rule_tier_name,
        policy=policy,
        current_policy_name=_policy_name(policy) if policy else "",
        explained=explanation is not None,
        in_population=explanation.in_population if explanation else True,
        population_words=explanation.population_words if explanation else "",
        today_outcome=today_outcome,
        other_policy=bool(determination and policy and determination.policy_id != policy.pk),
        nearest=nearest,
        show_nearest=worker and explanation is not None and explanation.in_population,
        stranded_override=stranded,
        stranded_tier_name=_tier_names([stranded.tier_code], policy=policy)[stranded.tier_code]
        if stranded
        else "",
    )


# --- Manual tiers (人工认定) ------------------------------------------------------------------------


# services.set_tier_override ends the open manual tier it replaces with this reason.
REPLACED = services.REPLACED_OVERRIDE


@dataclass(frozen=True)
class OverrideEntry:
    override: TierOverride
    tier_name: str
    set_by: str
    ended_by: str
    state: str  # in_force | upcoming | expired | ended | replaced


def _tier_names(codes, *, policy) -> dict[str, str]:
    """{tier code: name in the active language}: the policy in force's name, else the newest
    policy's that has the code, else the code itself."""
    names = {}
    tiers = Tier.objects.filter(code__in=set(codes)).select_related("policy")
    for tier in sorted(tiers, key=lambda t: (t.policy_id != (policy.pk if policy else None), -t.policy_id)):
        names.setdefault(tier.code, name_in_language(tier))
    return {code: names.get(code, code) for code in codes}


def override_history(senior: Senior, *, today: dt.date, policy) -> list[OverrideEntry]:
    """Every manual tier the senior has had, newest first: tier, reason, who set it, its window,
    and who ended it and why."""
    overrides = list(
        TierOverride.objects.filter(senior=senior).select_related("created_by", "ended_by").order_by("-id")
    )
    names = _tier_names([o.tier_code for o in overrides], policy=policy)
    entries = []
    for override in overrides:
        if override.ended_at is not None:
            state = "replaced" if override.end_reason == REPLACED else "ended"
        elif override.expires_on < today:
            state = "expired"
        elif override.starts_on > today:
            state = "upcoming"
        else:
            state = "in_force"
        entries.append(
            OverrideEntry(
                override=override,
                tier_name=names[override.tier_code],
                set_by=_person(override.created_by),
                ended_by=_person(override.ended_by) if override.ended_by_id else "",
                state=state,
            )
        )
    return entries


def _may_set_override(user, *, can_change: bool) -> bool:
    """A worker who may change the senior (officers are read-only) and may set manual tiers."""
    return can_change and user.has_perm("eligibility.add_tieroverride")


def _may_end_override(user, *, can_change: bool) -> bool:
    return can_change and user.has_perm("eligibility.change_tieroverride")


def _override_tiers(policy):
    return list(policy.tiers.order_by("rank")) if policy else []


def _senior_page(request, senior: Senior, *, override_form=None, end_form=None, status: int = 200):
    today = timezone.localdate()
    full_id = selectors.may_see_full_id_card_number(request.user)
    can_change = selectors.can_change(request.user, senior)
    open_override = selectors.open_override(senior=senior)
    why = why_panel(senior, today=today, worker=can_change, open_override=open_override)
    active = senior.status == Senior.Status.ACTIVE
    may_set = active and why.policy is not None and _may_set_override(request.user, can_change=can_change)
    may_end = open_override is not None and _may_end_override(request.user, can_change=can_change)
    if may_set and override_form is None:
        override_form = TierOverrideForm(tiers=_override_tiers(why.policy), today=today)
    if may_end and end_form is None:
        end_form = EndTierOverrideForm()
    overrides = override_history(senior, today=today, policy=why.policy)
    context = {
        "senior": senior,
        "id_card_number": senior.id_card_number if full_id else senior.masked_id_card_number,
        "facts": _facts(senior),
        "why": why,
        "overrides": overrides,
        "open_override": open_override,
        "open_override_tier_name": next(
            (
                entry.tier_name
                for entry in overrides
                if open_override and entry.override.pk == open_override.pk
            ),
            "",
        ),
        "override_form": override_form if may_set else None,
        "end_form": end_form if may_end else None,
        "panels": render_senior_panels(request, senior),
        "history": senior_history(senior),
        "can_change": can_change,
        "age": services.age_on(senior.birth_date, today),
        "today": today,
        "labels": {name: field_label(name) for name in SHOWN_FIELDS},
    }
    return render(request, "registry/senior.html", context, status=status)


@require_GET
@requires("eligibility.view_senior")
def senior_detail(request, senior_id: int):
    return _senior_page(request, _visible_senior(request, senior_id))


def _back_to_why(senior: Senior):
    return redirect(f"{reverse('registry-senior', args=[senior.pk])}#eligibility")


@requires("eligibility.view_senior")
@require_POST
def override_set(request, senior_id: int):
    """Set (or replace) a senior's manual tier: services.set_tier_override; refusals on their field."""
    senior = _visible_senior(request, senior_id)
    if not _may_set_override(request.user, can_change=selectors.can_change(request.user, senior)):
        return forbidden(request, READ_ONLY)
    if senior.status != Senior.Status.ACTIVE:  # the page offers no form: a stale or forged post
        messages.error(request, _("Only an active senior has a tier."))
        return _back_to_why(senior)
    today = timezone.localdate()
    form = TierOverrideForm(
        request.POST, tiers=_override_tiers(selectors.policy_in_force(as_of=today)), today=today
    )
    if form.is_valid():
        try:
            override = services.set_tier_override(senior=senior, by=request.user, **form.cleaned_data)
        except EligibilityError as error:
            if error.code == "not_permitted":
                return forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            tier = _tier_names([override.tier_code], policy=selectors.policy_in_force(as_of=today))
            messages.success(
                request,
                _("Manual tier %(tier)s until %(date)s.")
                % {"tier": tier[override.tier_code], "date": override.expires_on.isoformat()},
            )
            return _back_to_why(senior)
    return _senior_page(request, senior, override_form=form, status=400)


@requires("eligibility.view_senior")
@require_POST
def override_end(request, senior_id: int):
    """End a senior's open manual tier with a reason: services.end_tier_override."""
    senior = _visible_senior(request, senior_id)
    if not _may_end_override(request.user, can_change=selectors.can_change(request.user, senior)):
        return forbidden(request, READ_ONLY)
    form = EndTierOverrideForm(request.POST)
    if form.is_valid():
        try:
            ended = services.end_tier_override(
                senior=senior, by=request.user, reason=form.cleaned_data["end_reason"]
            )
        except EligibilityError as error:
            if error.code == "not_permitted":
                return forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            if ended:
                messages.success(request, _("The manual tier has ended; the rules decide the tier again."))
            else:
                messages.info(request, _("There is no manual tier to end."))
            return _back_to_why(senior)
    return _senior_page(request, senior, end_form=form, status=400)


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
        context.update(done=done, total=total, waiting=selectors.waits_for_task_service(job))
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
