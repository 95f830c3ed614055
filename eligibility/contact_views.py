"""The communities' contacts (社区联系人): whom a community's seniors call, printed on their cards.

A community worker keeps their own community's; the bureau any community's; an officer reads
those of their subdistrict or district.
"""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from config.i18n import name_in_language
from eligibility import selectors
from eligibility.errors import EligibilityError
from eligibility.services import set_community_contact
from eligibility.views import requires

PER_PAGE = 50


class ContactForm(forms.Form):
    name = forms.CharField(label=_("Contact person"), max_length=50, required=False)
    phone = forms.CharField(
        label=_("Contact phone"),
        max_length=30,
        required=False,
        help_text=_("A mobile number or an area code and number, e.g. 0571-87001234."),
    )


@requires("eligibility.view_senior")
def contact_list(request):
    communities = selectors.communities_visible_to(request.user).select_related("parent")
    page = Paginator(communities, PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {
            "community": community,
            "name": name_in_language(community),
            "parent": name_in_language(community.parent),
            "may_edit": selectors.may_set_community_contact(request.user, community),
        }
        for community in page
    ]
    return render(request, "registry/contacts.html", {"page": page, "rows": rows})


@require_http_methods(["GET", "POST"])
@requires("eligibility.view_senior")
def contact_edit(request, community_id: int):
    community = get_object_or_404(selectors.communities_visible_to(request.user), pk=community_id)
    if not selectors.may_set_community_contact(request.user, community):
        return render(
            request,
            "403.html",
            {"reason": _("Community contacts are kept by the community's worker and the bureau.")},
            status=403,
        )
    initial = {"name": community.contact_name, "phone": community.contact_phone}
    form = ContactForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            set_community_contact(
                community=community,
                name=form.cleaned_data["name"],
                phone=form.cleaned_data["phone"],
                by=request.user,
            )
        except EligibilityError as error:
            form.add_error(error.field if error.field in form.fields else None, error.detail)
        else:
            messages.success(request, _("Saved: the next cards printed show it."))
            return redirect("registry-contacts")
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "community": community, "name": name_in_language(community)}
    return render(request, "registry/contact_form.html", context, status=status)
