"""The bureau's policy pages (/policies/): the policy in force in plain words, drafts to edit,
what a draft would change, activation from a date, and evaluation runs with their progress.

Thin: reads through `selectors`, writes through `services` (which check the permission again and
refuse an edit of a published version; the database refuses it too). Who may open what:

- reading the published versions (the policy in force, scheduled and retired ones) is for
  everyone with `eligibility.view_policy`: the bureau, and the officers and community workers
  who explain a tier to a senior;
- drafts, the simulation, activation and evaluation runs are the bureau's alone: a draft is not
  policy until it is activated, and should not travel to the communities before then.
"""

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config import pages
from config.i18n import in_language, name_in_language
from config.months import local_date, next_month
from eligibility import conditions, selectors, services
from eligibility.errors import EligibilityError
from eligibility.models import CareVisitClass, EvaluationRun, Policy, PolicyRule, Tier
from eligibility.policy_forms import ActivateForm, CopyForm, PolicyForm, RuleForm, TierForm, percent
from eligibility.selectors import sees_whole_city

RECENT_RUNS = 10
PREVIEW = "preview"

NO_POLICIES = gettext_lazy(
    "The policies are for the bureau, and for the community workers and officers who explain them. "
    "Ask an administrator if you need access."
)
BUREAU_ONLY = gettext_lazy(
    "Drafting, simulating and activating policies is for the city's bureau administrators."
)
DRAFT_IS_THE_BUREAUS = gettext_lazy(
    "This version is a draft: only bureau administrators see it until it is activated."
)
NO_EVALUATION = gettext_lazy("Evaluating the registry is for the city's bureau administrators.")


def _guard(permission: str, reason, *, whole_city: bool = True):
    """A page for users with `permission`; the city's policy is changed (drafted, simulated,
    activated, evaluated) only by a bureau administrator who sees the whole city, as accounts
    are (a district-scoped one reads it)."""
    if not whole_city:
        return pages.page_for(lambda user: user.has_perm(permission), reason)
    return pages.page_for(lambda user: user.has_perm(permission) and sees_whole_city(user), reason)


readers = _guard("eligibility.view_policy", NO_POLICIES, whole_city=False)
editors = _guard("eligibility.change_policy", BUREAU_ONLY)


def _today() -> dt.date:
    return local_date(timezone.now())


# --- A version in plain words ---------------------------------------------------------------------


def words(condition) -> str:
    """A stored condition in plain words; a part the language does not know (a row written
    around the services) is said to be so rather than breaking the page."""
    try:
        return conditions.describe(conditions.validate(condition))
    except conditions.ConditionError:
        return _("(not a valid condition: edit it)")


@dataclass
class RuleShown:
    rule: PolicyRule
    label: str
    words: str
    form: RuleForm | None = None
    preview: dict | None = None
    open: bool = False


@dataclass
class TierShown:
    tier: Tier
    name: str
    share: Decimal  # per cent of the contract price
    co_pay: Decimal
    rules: list[RuleShown] = field(default_factory=list)
    form: TierForm | None = None
    open: bool = False


@dataclass
class CareGroup:
    value: str  # A, B or C
    label: str
    rules: list[RuleShown] = field(default_factory=list)


@dataclass
class PolicyShown:
    policy: Policy
    name: str
    state: str  # draft | scheduled | in_force | ended
    state_label: str
    population_words: str
    tiers: list[TierShown]
    care_groups: list[CareGroup]


STATE_LABELS = {
    "draft": gettext_lazy("Draft"),
    "scheduled": gettext_lazy("Scheduled"),
    "in_force": gettext_lazy("In force"),
    "ended": gettext_lazy("Retired"),
}


def version_state(policy: Policy, today: dt.date) -> str:
    """Where a version stands today. A replaced version is retired the moment its successor is
    activated, but stays in force until the day before the successor starts."""
    if policy.is_draft:
        return "draft"
    if policy.effective_from > today:
        return "scheduled"
    if policy.effective_until is None or policy.effective_until >= today:
        return "in_force"
    return "ended"


def describe_policy(policy: Policy, *, today: dt.date) -> PolicyShown:
    """The version as the pages show it: its tiers with their terms and, under each, the rules
    that grant it; then the care-visit rules by class; every condition in plain words."""
    tiers = [
        TierShown(
            tier=tier,
            name=name_in_language(tier),
            share=percent(tier.government_share_rate),
            co_pay=percent(Decimal(1) - tier.government_share_rate),
        )
        for tier in policy.tiers.order_by("rank", "code")
    ]
    by_tier = {shown.tier.pk: shown for shown in tiers}
    care_groups = {value: CareGroup(value, label) for value, label in CareVisitClass.choices}
    for rule in policy.rules.order_by("pk"):
        shown = RuleShown(rule=rule, label=rule.label_in_language, words=words(rule.condition))
        if rule.tier_id in by_tier:
            by_tier[rule.tier_id].rules.append(shown)
        elif rule.care_visit_class in care_groups:
            care_groups[rule.care_visit_class].rules.append(shown)
    state = version_state(policy, today)
    return PolicyShown(
        policy=policy,
        name=in_language(policy.name, policy.name_en),
        state=state,
        state_label=str(STATE_LABELS[state]),
        population_words=words(policy.population) if policy.population else _("Every registered senior"),
        tiers=tiers,
        care_groups=list(care_groups.values()),
    )


def _runs(user):
    if not user.has_perm("eligibility.view_evaluationrun"):
        return None
    return EvaluationRun.objects.select_related("started_by", "policy")[:RECENT_RUNS]


# --- The list -------------------------------------------------------------------------------------


@require_GET
@readers
def policy_list(request):
    today = _today()
    sections = selectors.policies_for_bureau()
    current = sections["current"]
    user = request.user
    may_draft = user.has_perm("eligibility.add_policy")
    context = {
        "current": describe_policy(current, today=today) if current else None,
        "current_draft": selectors.draft_of(current.code) if current and may_draft else None,
        "copy_form": CopyForm(policy=current) if current and may_draft else None,
        "scheduled": sections["scheduled"],
        "drafts": sections["drafts"] if user.has_perm("eligibility.change_policy") else None,
        "retired": sections["retired"],
        "may_evaluate": user.has_perm("eligibility.add_evaluationrun"),
        "runs": _runs(user),
        "today": today,
    }
    return render(request, "policies/index.html", context)


# --- One version: read-only, or the draft's editor -------------------------------------------------


def _published_refused(request, policy: Policy):
    """An edit of a published version: refused with the service's words, on the version's page
    (the service and the database would refuse it too)."""
    messages.error(
        request,
        _("Version %(version)s of %(code)s is published and fixed; copy it to a draft to change it.")
        % {"version": policy.version, "code": policy.code},
    )
    return redirect("policy-detail", policy_id=policy.pk)


def _facts_reference() -> list[dict]:
    """The facts a condition may read, with their operators and values, for the editor's side."""
    kinds = {
        "age": _("whole years on the evaluation date, 0 to 150"),
        "flag": _("true or false"),
        "choice": _("a list of one or more of the values"),
    }
    return [
        {
            "name": fact.name,
            "label": fact.label,
            "kind": fact.kind,
            "ops": conditions.OPS_OF_KIND[fact.kind],
            "values": kinds[fact.kind],
            "choices": [(value, in_language(*names)) for value, names in fact.choices.items()],
        }
        for fact in conditions.FACTS.values()
    ]


@dataclass
class Bound:
    """The one form a POST filled in, to be shown again with its errors or its preview."""

    kind: str  # policy | tier | new_tier | rule | new_rule
    form: object
    pk: int | None = None
    preview: dict | None = None


def _draft_page(request, policy: Policy, *, bound: Bound | None = None, status: int = 200):
    shown = describe_policy(policy, today=_today())
    bound = bound or Bound(kind="", form=None)
    for tier in shown.tiers:
        if bound.kind == "tier" and bound.pk == tier.tier.pk:
            tier.form, tier.open = bound.form, True
        else:
            tier.form = TierForm(tier=tier.tier)
    tiers = [tier.tier for tier in shown.tiers]
    rules = [rule for tier in shown.tiers for rule in tier.rules]
    rules += [rule for group in shown.care_groups for rule in group.rules]
    for rule in rules:
        if bound.kind == "rule" and bound.pk == rule.rule.pk:
            rule.form, rule.preview, rule.open = bound.form, bound.preview, True
        else:
            rule.form = RuleForm(policy=policy, rule=rule.rule, tiers=tiers)
    context = {
        "shown": shown,
        "policy": policy,
        "policy_form": bound.form if bound.kind == "policy" else PolicyForm(policy=policy),
        "policy_preview": bound.preview if bound.kind == "policy" else None,
        "policy_open": bound.kind == "policy",
        "new_tier_form": bound.form if bound.kind == "new_tier" else TierForm(),
        "new_tier_open": bound.kind == "new_tier",
        "new_rule_form": bound.form if bound.kind == "new_rule" else RuleForm(policy=policy, tiers=tiers),
        "new_rule_preview": bound.preview if bound.kind == "new_rule" else None,
        "new_rule_open": bound.kind == "new_rule",
        "facts": _facts_reference(),
        "tiers_in_use": set(policy.rules.exclude(tier=None).values_list("tier_id", flat=True)),
        "may_activate": request.user.has_perm("eligibility.activate_policy"),
    }
    return render(request, "policies/draft.html", context, status=status)


def _saved(request, policy: Policy, anchor: str = ""):
    messages.success(request, _("Saved."))
    url = reverse("policy-detail", kwargs={"policy_id": policy.pk})
    return redirect(f"{url}#{anchor}" if anchor else url)


@require_http_methods(["GET", "POST"])
@readers
def policy_detail(request, policy_id: int):
    """A published version read-only; a draft, for the bureau, its editor. A POST saves (or,
    with "preview", only checks and puts in words) the draft's names and population."""
    policy = get_object_or_404(Policy.objects.select_related("based_on", "activated_by"), pk=policy_id)
    may_edit = request.user.has_perm("eligibility.change_policy")
    if request.method == "POST":
        if not may_edit:
            return pages.forbidden(request, BUREAU_ONLY)
        if not policy.is_draft:
            return _published_refused(request, policy)
        form = PolicyForm(request.POST, policy=policy)
        if request.POST.get("action") == PREVIEW:
            preview = form.condition_preview("population")
            return _draft_page(request, policy, bound=Bound("policy", form, preview=preview))
        if form.is_valid():
            try:
                services.update_draft(policy=policy, by=request.user, **form.values())
            except EligibilityError as error:
                form.add_service_error(error)
            else:
                return _saved(request, policy, "policy")
            policy.refresh_from_db()  # the draft as stored: a refused value is shown in the form only
        return _draft_page(request, policy, bound=Bound("policy", form), status=400)
    if policy.is_draft:
        if not may_edit:
            return pages.forbidden(request, DRAFT_IS_THE_BUREAUS)
        return _draft_page(request, policy)
    context = {
        "shown": describe_policy(policy, today=_today()),
        "copy_form": CopyForm(policy=policy) if request.user.has_perm("eligibility.add_policy") else None,
        "draft": selectors.draft_of(policy.code) if may_edit else None,
    }
    return render(request, "policies/detail.html", context)


def _draft_for_edit(request, policy_id: int):
    """(policy, refusal): the draft to change, or the response refusing a published one."""
    policy = get_object_or_404(Policy, pk=policy_id)
    return policy, (None if policy.is_draft else _published_refused(request, policy))


def _refused(request, policy: Policy, error: EligibilityError, anchor: str = ""):
    """A refusal that belongs to no field of a form on the page (a tier still in use)."""
    if error.code == "not_permitted":
        return pages.forbidden(request, error.detail)
    messages.error(request, error.detail)
    url = reverse("policy-detail", kwargs={"policy_id": policy.pk})
    return redirect(f"{url}#{anchor}" if anchor else url)


# --- Tiers ----------------------------------------------------------------------------------------


@editors
@require_POST
def tier_add(request, policy_id: int):
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    form = TierForm(request.POST)
    if form.is_valid():
        try:
            tier = services.save_tier(policy=policy, by=request.user, **form.values())
        except EligibilityError as error:
            form.add_service_error(error)
        else:
            return _saved(request, policy, f"tier-{tier.code}")
    return _draft_page(request, policy, bound=Bound("new_tier", form), status=400)


@editors
@require_POST
def tier_save(request, policy_id: int, tier_id: int):
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    tier = get_object_or_404(Tier, pk=tier_id, policy=policy)
    form = TierForm(request.POST, tier=tier)
    if form.is_valid():
        try:
            tier = services.save_tier(policy=policy, by=request.user, tier=tier, **form.values())
        except EligibilityError as error:
            form.add_service_error(error)
        else:
            return _saved(request, policy, f"tier-{tier.code}")
    # The tier as stored, so the page's other parts and the form's ids stay as they were.
    tier.refresh_from_db()
    return _draft_page(request, policy, bound=Bound("tier", form, pk=tier.pk), status=400)


def _delete_part(request, policy_id: int, model, pk: int, delete, section: str, done):
    """Delete a tier or a rule of a draft (`delete(part)`, a service), then back to its section;
    `done(part)` is the message. A refusal shows the page with it at the part."""
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    part = get_object_or_404(model, pk=pk, policy=policy)
    try:
        delete(part)
    except EligibilityError as error:
        return _refused(request, policy, error, f"{section[:-1]}-{part.code}")
    messages.success(request, done(part))
    return redirect(f"{reverse('policy-detail', kwargs={'policy_id': policy.pk})}#{section}")


@editors
@require_POST
def tier_delete(request, policy_id: int, tier_id: int):
    return _delete_part(
        request,
        policy_id,
        Tier,
        tier_id,
        lambda tier: services.delete_tier(tier=tier, by=request.user),
        "tiers",
        lambda tier: _("The tier %(name)s is deleted.") % {"name": tier.name},
    )


# --- Rules ----------------------------------------------------------------------------------------


def _rule_posted(request, policy: Policy, rule: PolicyRule | None):
    """Save, or only preview, a rule from its form; the page again with the form on a problem."""
    form = RuleForm(request.POST, policy=policy, rule=rule)
    kind = "rule" if rule else "new_rule"
    pk = rule.pk if rule else None
    if request.POST.get("action") == PREVIEW:
        preview = form.condition_preview("condition")
        return _draft_page(request, policy, bound=Bound(kind, form, pk=pk, preview=preview))
    if form.is_valid():
        try:
            saved = services.save_rule(policy=policy, by=request.user, rule=rule, **form.values())
        except EligibilityError as error:
            if error.code == "not_permitted":
                return pages.forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            return _saved(request, policy, f"rule-{saved.code}")
    if rule is not None:
        rule.refresh_from_db()  # the rule as stored: a refused value is shown in the form only
    return _draft_page(request, policy, bound=Bound(kind, form, pk=pk), status=400)


@editors
@require_POST
def rule_add(request, policy_id: int):
    policy, refusal = _draft_for_edit(request, policy_id)
    return refusal or _rule_posted(request, policy, None)


@editors
@require_POST
def rule_save(request, policy_id: int, rule_id: int):
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    return _rule_posted(request, policy, get_object_or_404(PolicyRule, pk=rule_id, policy=policy))


@editors
@require_POST
def rule_delete(request, policy_id: int, rule_id: int):
    return _delete_part(
        request,
        policy_id,
        PolicyRule,
        rule_id,
        lambda rule: services.delete_rule(rule=rule, by=request.user),
        "rules",
        lambda rule: _("The rule %(code)s is deleted.") % {"code": rule.code},
    )


# --- The draft as a whole: copy, delete, simulate, activate -----------------------------------------


@require_http_methods(["GET", "POST"])
@_guard("eligibility.add_policy", BUREAU_ONLY)
def policy_copy(request, policy_id: int):
    """A new draft from a version: the next version of its code, or version 1 of another."""
    policy = get_object_or_404(Policy, pk=policy_id)
    form = CopyForm(request.POST or None, policy=policy)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"] or policy.code
        if selectors.draft_of(code) is not None:
            # Said here as the service says it (it refuses `draft_exists` too), at the code.
            form.add_error(
                "code", _("%(code)s already has a draft; edit that one or delete it first.") % {"code": code}
            )
    if request.method == "POST" and form.is_valid():
        try:
            draft = services.copy_policy(
                policy=policy,
                by=request.user,
                code=form.cleaned_data["code"] or None,
                name=form.cleaned_data["name"] or None,
            )
        except EligibilityError as error:
            if error.code == "not_permitted":
                return pages.forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            messages.success(
                request,
                _("Draft version %(version)s of %(code)s is ready to edit.")
                % {"version": draft.version, "code": draft.code},
            )
            return redirect("policy-detail", policy_id=draft.pk)
    typed = (form.data.get("code") or "").strip() if form.is_bound else ""
    code = typed or policy.code
    context = {"policy": policy, "form": form, "existing_draft": selectors.draft_of(code)}
    return render(request, "policies/copy.html", context, status=400 if form.is_bound else 200)


@editors
@require_POST
def policy_delete(request, policy_id: int):
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    try:
        services.delete_draft(policy=policy, by=request.user)
    except EligibilityError as error:
        return _refused(request, policy, error)
    messages.success(
        request,
        _("The draft version %(version)s of %(code)s is deleted.")
        % {"version": policy.version, "code": policy.code},
    )
    return redirect("policy-list")


def _signed(amount) -> dict:
    """A difference of money as a page writes it: its sign apart (+, −, none) and the amount."""
    value = amount.amount
    return {"sign": "+" if value > 0 else ("−" if value < 0 else ""), "amount": abs(value)}


def _care_label(value: str) -> str:
    return _("Class %(class)s") % {"class": value} if value else _("No class")


def _simulation_shown(simulation: selectors.Simulation) -> dict:
    def tier_name(tier):
        return name_in_language(tier) if tier else _("No tier")

    def budget(bucket, name):
        return {
            "name": name,
            "seniors": bucket["seniors"],
            "moved": bucket["moved"],
            "current": bucket["current"].amount,
            "draft": bucket["draft"].amount,
            "difference": _signed(bucket["difference"]),
        }

    return {
        "simulation": simulation,
        "tier_moves": [
            {
                "from": tier_name(m["from"]),
                "to": tier_name(m["to"]),
                "seniors": m["seniors"],
                "moved": m["moved"],
            }
            for m in simulation.tier_moves
        ],
        "care_moves": [
            {
                "from": _care_label(m["from"]),
                "to": _care_label(m["to"]),
                "seniors": m["seniors"],
                "moved": m["moved"],
            }
            for m in simulation.care_moves
        ],
        "tier_moved": sum(m["seniors"] for m in simulation.tier_moves if m["moved"]),
        "care_moved": sum(m["seniors"] for m in simulation.care_moves if m["moved"]),
        "districts": [
            budget(d, d["region"].name if d["region"] else _("No district")) for d in simulation.districts
        ],
        "total": budget(simulation.total, _("Whole city")),
    }


def _simulated(draft: Policy) -> tuple[dict | None, str]:
    """(the simulation as the pages show it, or None; the refusal's words, if any)."""
    try:
        simulation = selectors.simulate_policy(draft=draft, as_of=_today())
    except EligibilityError as error:
        return None, error.detail
    return _simulation_shown(simulation), ""


@require_GET
@editors
def policy_simulate(request, policy_id: int):
    """What the draft would change on today's registry, against the policy in force; writes
    nothing (and, like every page here, is never cached: the registry changes)."""
    policy = get_object_or_404(Policy, pk=policy_id)
    if not policy.is_draft:
        messages.info(request, _("Only a draft is simulated: a published version is already decided."))
        return redirect("policy-detail", policy_id=policy.pk)
    shown, problem = _simulated(policy)
    context = {"policy": policy, "problem": problem, **(shown or {})}
    return render(request, "policies/simulate.html", context)


@require_http_methods(["GET", "POST"])
@_guard("eligibility.activate_policy", BUREAU_ONLY)
def policy_activate(request, policy_id: int):
    """A date (the first of next month unless another is chosen) and what the draft would change;
    activating publishes the draft from then, and retires the version it replaces."""
    policy, refusal = _draft_for_edit(request, policy_id)
    if refusal:
        return refusal
    form = ActivateForm(request.POST or None, initial={"effective_from": next_month(_today())})
    if request.method == "POST" and form.is_valid():
        try:
            services.activate_policy(
                policy=policy, effective_from=form.cleaned_data["effective_from"], by=request.user
            )
        except EligibilityError as error:
            if error.code == "not_permitted":
                return pages.forbidden(request, error.detail)
            form.add_service_error(error)
        else:
            messages.success(
                request,
                _("Version %(version)s of %(code)s is activated: in force from %(date)s.")
                % {
                    "version": policy.version,
                    "code": policy.code,
                    "date": form.cleaned_data["effective_from"].isoformat(),
                },
            )
            return redirect("policy-detail", policy_id=policy.pk)
    shown, problem = _simulated(policy)
    context = {"policy": policy, "form": form, "problem": problem, **(shown or {})}
    return render(request, "policies/activate.html", context, status=400 if form.is_bound else 200)


# --- Evaluation runs ------------------------------------------------------------------------------


@_guard("eligibility.add_evaluationrun", NO_EVALUATION)
@require_POST
def evaluation_start(request):
    """Evaluate the whole registry as of today, as a Celery task; its page follows it."""
    try:
        run = services.start_evaluation(as_of=selectors.evaluation_date(today=_today()), by=request.user)
    except EligibilityError as error:
        if error.code == "not_permitted":
            return pages.forbidden(request, error.detail)
        messages.error(request, error.detail)
        return redirect("policy-list")
    return redirect("policy-run", run_id=run.pk)


def _progress(run: EvaluationRun) -> dict:
    done, total = selectors.evaluation_progress(run=run)
    finished = run.state in (EvaluationRun.State.DONE, EvaluationRun.State.FAILED)
    return {
        "state": run.state,
        "finished": finished,
        "done": done,
        "total": total,
        "text": _("Step %(done)s of %(total)s") % {"done": done, "total": total},
    }


@require_GET
@_guard("eligibility.view_evaluationrun", NO_EVALUATION, whole_city=False)
def evaluation_run(request, run_id: int):
    run = get_object_or_404(EvaluationRun.objects.select_related("started_by", "policy"), pk=run_id)
    context = {"run": run, "progress": _progress(run), "waiting": selectors.waits_for_task_service(run)}
    return render(request, "policies/run.html", context)


@require_GET
@_guard("eligibility.view_evaluationrun", NO_EVALUATION, whole_city=False)
def evaluation_run_progress(request, run_id: int):
    """The run's progress for the page's bar, as JSON: state, steps done of all, and once it
    has finished, what it evaluated, changed and retired."""
    run = get_object_or_404(EvaluationRun, pk=run_id)
    progress = _progress(run)
    if progress["finished"]:
        progress.update(evaluated=run.evaluated, changed=run.changed, retired=run.retired, error=run.error)
    return JsonResponse(progress)
