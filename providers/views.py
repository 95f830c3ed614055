"""The bureau's accounts page: each person's role, and the region or provider they work in."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _

from config.pages import page_for
from config.roles import ROLE_NAMES, roles_of
from eligibility.selectors import scope_region
from providers import selectors
from providers.errors import ProviderError
from providers.forms import AccountForm
from providers.services import save_account

PER_PAGE = 50
NOT_BUREAU = _("Accounts are managed by bureau administrators.")


bureau_only = page_for(selectors.may_manage_accounts, NOT_BUREAU)


def _row(user):
    roles = roles_of(user)
    scope = getattr(getattr(user, "region_scope", None), "region", None)
    staff = getattr(user, "staff_member", None)
    return {
        "user": user,
        "roles": [ROLE_NAMES[role] for role in roles],
        "where": scope.name if scope else (staff.provider.name if staff and staff.is_active else ""),
    }


@bureau_only
def account_list(request):
    accounts = selectors.accounts_visible_to(request.user)
    role = request.GET.get("role")
    if role in ROLE_NAMES:
        accounts = accounts.filter(groups__name=role)
    page = Paginator(accounts, PER_PAGE).get_page(request.GET.get("page"))
    for user in page:  # the page's own prefetch answers roles_of without a query per row
        user._role_codes = [r for r in ROLE_NAMES if r in {g.name for g in user.groups.all()}]
    context = {"page": page, "rows": [_row(user) for user in page], "roles": ROLE_NAMES, "role": role}
    return render(request, "accounts/list.html", context)


def _save(request, form, user):
    data = form.cleaned_data
    return save_account(
        by=request.user,
        user=user,
        username=data.get("username", ""),
        full_name=data["full_name"],
        role=data["role"],
        region=data.get("region"),
        provider=data.get("provider"),
        employee_number=data.get("employee_number", ""),
        is_active=data.get("is_active", False),
        password=data.get("password") or None,
    )


def _edit(request, user):
    if request.method == "POST":
        form = AccountForm(request.POST, editing=user, initial=_initial(user) if user else None)
        if form.is_valid():
            try:
                result = _save(request, form, user)
            except ProviderError as error:
                if error.field in form.fields:
                    form.add_error(error.field, error.detail)
                else:
                    form.add_error(None, error.detail)
            else:
                messages.success(
                    request,
                    _("Account %(username)s saved.") % {"username": result.user.get_username()},
                )
                return redirect("accounts-list")
    else:
        form = AccountForm(editing=user, initial=_initial(user) if user else {"is_active": True})
    return render(request, "accounts/form.html", {"form": form, "account": user})


def _initial(user) -> dict:
    roles = roles_of(user)
    staff = getattr(user, "staff_member", None)
    return {
        "username": user.get_username(),
        "full_name": user.get_full_name(),
        "role": roles[0] if roles else None,
        "region": scope_region(user),
        "provider": staff.provider if staff and staff.is_active else None,
        "employee_number": staff.employee_number if staff else "",
        "is_active": user.is_active,
    }


@bureau_only
def account_add(request):
    return _edit(request, None)


@bureau_only
def account_edit(request, user_id: int):
    return _edit(request, get_object_or_404(selectors.accounts_visible_to(request.user), pk=user_id))
