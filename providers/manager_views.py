"""A provider manager runs their own team: staff, their devices, the month's redemptions.

Under /providers/<id>/. The provider's manager reads and changes their own provider's team; the
city-wide bureau and superusers read every team (superusers may change them too); service staff,
finance and the registry roles get the friendly 403. Another provider's team is not found (404).
Thin: a selector decides what is visible, a service makes each change.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from config.i18n import name_in_language
from config.months import format_month, month_of, parse_month
from config.pages import forbidden, page_for
from config.roles import PROVIDER, roles_of
from providers import selectors
from providers.errors import ProviderError
from providers.forms import ReasonForm
from providers.manager_forms import StaffMemberForm
from providers.models import Device, StaffMember
from providers.services import add_staff_member, revoke_team_device, set_staff_active

PER_PAGE = 50
NOT_TEAM = _("The team pages are for provider managers and the bureau.")
NOT_MANAGER = _("Only this provider's manager may change its team.")

team_page = page_for(selectors.may_see_teams, NOT_TEAM)


def _team(request, provider_id: int):
    """The provider whose team is asked for, if the user may read it (else 404)."""
    return get_object_or_404(selectors.teams_visible_to(request.user), pk=provider_id)


def _runs(request, provider, permission: str) -> bool:
    return selectors.runs_team(request.user, provider=provider, permission=permission)


@team_page
def my_team(request, page: str):
    """/providers/staff/ and the like (the home page's links): a manager's own provider's page;
    the bureau and superusers choose a provider first."""
    staff = getattr(request.user, "staff_member", None)
    if PROVIDER in roles_of(request.user) and staff is not None:
        query = request.GET.urlencode()  # ?month=… and the like go along
        return redirect(reverse(page, args=[staff.provider_id]) + (f"?{query}" if query else ""))
    try:
        return redirect(reverse("provider-list"))
    except NoReverseMatch:
        raise Http404 from None


@team_page
def staff_list(request, provider_id: int):
    provider = _team(request, provider_id)
    page = Paginator(selectors.staff_of(provider=provider), PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "provider": provider,
        "team_page": "staff",
        "page": page,
        "can_add": _runs(request, provider, "providers.add_staffmember"),
        "can_change": _runs(request, provider, "providers.change_staffmember"),
    }
    return render(request, "providers/manager_staff.html", context)


@team_page
def staff_add(request, provider_id: int):
    provider = _team(request, provider_id)
    if not _runs(request, provider, "providers.add_staffmember"):
        return forbidden(request, NOT_MANAGER)
    form = StaffMemberForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                member = add_staff_member(by=request.user, provider=provider, **form.cleaned_data)
            except ProviderError as error:
                form.add_error(error.field if error.field in form.fields else None, error.detail)
            else:
                messages.success(
                    request,
                    _("%(name)s can now sign in as %(username)s and sign a phone in to scan.")
                    % {"name": member.display_name, "username": member.user.get_username()},
                )
                return redirect("team-staff", provider.pk)
        status = 400
    context = {"provider": provider, "team_page": "staff", "form": form}
    return render(request, "providers/manager_staff_form.html", context, status=status)


@team_page
def staff_active(request, provider_id: int, staff_id: int, active: bool):
    """GET: the confirmation, with a reason to give; POST: deactivate (or reactivate) them."""
    provider = _team(request, provider_id)
    member = get_object_or_404(StaffMember.objects.select_related("user"), pk=staff_id, provider=provider)
    if not _runs(request, provider, "providers.change_staffmember"):
        return forbidden(request, NOT_MANAGER)
    form = ReasonForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                set_staff_active(
                    by=request.user, staff=member, active=active, reason=form.cleaned_data["reason"]
                )
            except ProviderError as error:
                if error.code == "not_permitted":
                    return forbidden(request, error.detail)
                form.add_error("reason" if error.field == "reason" else None, error.detail)
            else:
                done = (
                    _("%(name)s is active again and may scan.")
                    if active
                    else _(
                        "%(name)s is deactivated: signed out, and every scan or void from their phones is refused."
                    )
                )
                messages.success(request, done % {"name": member.display_name})
                return redirect("team-staff", provider.pk)
        status = 400
    context = {"provider": provider, "team_page": "staff", "member": member, "active": active, "form": form}
    return render(request, "providers/manager_staff_active.html", context, status=status)


@team_page
def device_list(request, provider_id: int):
    provider = _team(request, provider_id)
    page = Paginator(selectors.devices_of(provider=provider), PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "provider": provider,
        "team_page": "devices",
        "page": page,
        "can_revoke": _runs(request, provider, "providers.change_device"),
    }
    return render(request, "providers/manager_devices.html", context)


@team_page
@require_POST
def device_revoke(request, provider_id: int, device_id: int):
    provider = _team(request, provider_id)
    device = get_object_or_404(Device.objects.select_related("staff"), pk=device_id, staff__provider=provider)
    try:
        revoke_team_device(by=request.user, device=device)
    except ProviderError as error:
        return forbidden(request, error.detail)
    messages.success(
        request,
        _("The phone %(device)s of %(name)s is revoked: its next scan is refused.")
        % {"device": device.name or device.token_prefix, "name": device.staff.display_name},
    )
    return redirect("team-devices", provider.pk)


@team_page
def redemption_list(request, provider_id: int):
    provider = _team(request, provider_id)
    this_month = month_of(timezone.now())
    asked = (request.GET.get("month") or "").strip()
    status, bad_month = 200, False
    try:
        month = parse_month(asked) if asked else this_month
    except ValueError:
        month, status, bad_month = this_month, 400, True
    rows = selectors.redemptions_of_month(provider=provider, month=month)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    for redemption in page:  # the item's name in the page's language
        redemption.item_name = name_in_language(redemption.service_item)
    context = {
        "provider": provider,
        "team_page": "redemptions",
        "month": month,
        "month_param": format_month(month),
        "months": selectors.months_with_redemptions(provider=provider, until=max(month, this_month)),
        "bad_month": bad_month,
        "page": page,
        "totals": selectors.month_totals(provider=provider, month=month),
    }
    return render(request, "providers/manager_redemptions.html", context, status=status)
