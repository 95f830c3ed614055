"""Project-level pages: sign-in, sign-out, the home page of each role, and error handlers."""

import sys
from dataclasses import dataclass

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

from config import api, signin
from config.roles import BUREAU, FINANCE, OFFICER, PROVIDER, ROLE_NAMES, STAFF, WORKER, roles_of


class SignInForm(AuthenticationForm):
    """Django's sign-in form, refused whole while the username or the address is locked out
    (config.signin: too many failures), whatever the password."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            if signin.is_locked_out(self.request):
                raise ValidationError(signin.locked_message(), code="rate_limited") from None
            raise


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
    authentication_form = SignInForm


class LogoutView(auth_views.LogoutView):
    """Sign-out is a POST (Django refuses GET), so a link or a prefetch cannot sign anyone out."""


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None
    description: str = ""


def _url(name: str) -> str | None:
    # Pages of other apps may not exist yet; a missing one is left out rather than a crash.
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _links_by_role() -> dict[str, list[Link]]:
    accounts = Link(
        _("Accounts"),
        _url("accounts-list"),
        _("Give people their role, and the region or provider they work in."),
    )
    seniors = Link(
        _("Senior registry"),
        _url("registry-list"),
        _("Find, register and update seniors."),
    )
    policies = Link(
        _("Policies"),
        _url("policy-list"),
        _("The policy in force, drafts and what they would change, and evaluating the registry."),
    )
    care_visits = Link(
        _("Care visits"),
        _url("carevisits-picture"),
        _("Special-difficulty seniors: my visits, the month's visit rate, the three forms."),
    )
    api_docs = Link(_("API documentation"), _url("api-docs"), _("For the scanner and other systems."))
    settlement = Link(
        _("Monthly settlement"), _url("billing-periods"), _("Settled months, statements and Excel exports.")
    )
    providers = Link(
        _("Providers and contracts"),
        _url("provider-list"),
        _("Providers, their contracts, prices and service areas, and the service catalogue."),
    )
    # A manager's own provider and team: these addresses take them to their provider's pages.
    provider_page = Link(_("Our provider"), _url("provider-list"), _("Contracts, prices and service areas."))
    team = [
        Link(_("Staff"), _url("team-my-staff"), _("Add staff members, deactivate those who leave.")),
        Link(_("Devices"), _url("team-my-devices"), _("Signed-in phones; revoke a lost one at once.")),
        Link(_("Redemptions"), _url("team-my-redemptions"), _("This month's services and totals.")),
    ]
    scanner = Link(
        _("Scan vouchers"),
        _url("scan"),
        _("At the senior's door: scan the card, record the service, check in and out. Works offline."),
    )
    return {
        BUREAU: [seniors, policies, providers, accounts, api_docs, settlement, care_visits],
        OFFICER: [seniors, care_visits],
        WORKER: [seniors, care_visits],
        PROVIDER: [provider_page, *team, scanner, settlement, api_docs],
        STAFF: [scanner, api_docs],
        FINANCE: [settlement, providers],
    }


def home_links(*, roles: list[str], is_superuser: bool) -> list[Link]:
    """The pages a user's roles lead to, each once, in role order; superusers get every one, and
    the admin, which is for a superuser's repairs rather than anyone's daily work."""
    by_role = _links_by_role()
    wanted = list(by_role) if is_superuser else roles
    links: dict[str, Link] = {}
    for role in wanted:
        for link in by_role[role]:
            if link.url:
                links.setdefault(link.url, link)
    if is_superuser:
        admin = Link(_("Administration"), _url("admin:index"), _("Repairs: every record, for superusers."))
        links.setdefault(admin.url, admin)
    return list(links.values())


def _roles(request) -> list[str]:
    """The signed-in user's role codes, read once per request: the header and the page share them."""
    if not hasattr(request, "_roles"):
        request._roles = roles_of(request.user)
    return request._roles


def account_context(request) -> dict:
    """Context processor: the header's role names, queried only if a page shows them."""
    return {"account_role_names": SimpleLazyObject(lambda: [ROLE_NAMES[role] for role in _roles(request)])}


@login_required
def home(request):
    roles = _roles(request)
    is_superuser = request.user.is_superuser
    context = {
        "role_names": [ROLE_NAMES[role] for role in roles],
        "links": home_links(roles=roles, is_superuser=is_superuser),
        "has_role": bool(roles) or is_superuser,
        "scans_in_scanner_app": is_superuser or bool({PROVIDER, STAFF} & set(roles)),
    }
    return render(request, "home.html", context)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return api.json_not_found(request, exception)
    return render(request, "404.html", status=404)


def csrf_failure(request, reason=""):
    if request.path.startswith("/api/"):
        return api.json_csrf_failure(request, reason)
    # With the request, so the page's own forms (the language switch) carry a token and `next`.
    return render(request, "403_csrf.html", status=403)


def service_unavailable(request, *, retry_after: int):
    if request.path.startswith("/api/"):
        return api.json_service_unavailable(request, retry_after=retry_after)
    # No request context: the database is what failed, and the header would query it.
    response = render(None, "503.html", status=503)
    response["Retry-After"] = str(retry_after)
    return response


def server_error(request):
    from config.middleware import database_unavailable

    # A failure outside a view (the session or the user read in a middleware) lands here.
    unavailable = database_unavailable(request, sys.exc_info()[1])
    if unavailable is not None:
        return unavailable
    if request.path.startswith("/api/"):
        return api.json_server_error(request)
    # No request context: the failure may be the database, which the header would query.
    return render(None, "500.html", status=500)
