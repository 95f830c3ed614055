"""The bureau's providers pages (/providers/): providers, their suspension, their contracts with
prices and areas, and the service catalogue. Finance reads them; a provider manager reads their
own provider's page. Thin: forms parse, `providers.services` writes, `providers.selectors` reads."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from config.i18n import name_in_language
from config.pages import page_for
from providers import selectors, services
from providers.contract_forms import (
    BLANK_ITEM_ROWS,
    CONTRACT_STATUS_NAMES,
    ContractForm,
    ContractItemFormSet,
    ProviderForm,
    ServiceItemForm,
)
from providers.errors import ProviderError
from providers.forms import ReasonForm
from providers.models import Contract, ContractItem, Provider, ServiceItem

PER_PAGE = 50
NOT_READERS = _("The providers pages are for the bureau and finance; a provider's manager sees their own.")
NOT_MANAGERS = _(
    "Providers, contracts and the service catalogue are managed by the city's bureau administrators."
)

readers = page_for(
    lambda user: selectors.may_read_providers(user) or selectors.provider_managed_by(user) is not None,
    NOT_READERS,
)
managers = page_for(selectors.may_manage_providers, NOT_MANAGERS)


def _today():
    return timezone.localdate()


# --- Providers -------------------------------------------------------------------------------------


@readers
def provider_list(request):
    if not selectors.may_read_providers(request.user):
        # A provider manager has one provider: their page is their list.
        return redirect("provider-detail", provider_id=selectors.provider_managed_by(request.user).pk)
    query = " ".join(request.GET.get("q", "").split())[:100]
    providers = selectors.providers_listed(on=_today(), query=query)
    page = Paginator(providers, PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "query": query,
        "rows": [{"provider": p, "name": name_in_language(p)} for p in page],
        "can_manage": selectors.may_manage_providers(request.user),
    }
    return render(request, "providers/list.html", context)


def _provider_form_page(request, provider: Provider | None):
    if request.method == "POST":
        form = ProviderForm(request.POST, editing=provider, initial=_provider_initial(provider))
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.save_provider(
                    by=request.user,
                    provider=provider,
                    code=data.get("code", ""),
                    name=data["name"],
                    name_en=data["name_en"],
                    credit_code=data["credit_code"],
                    contact_phone=data["contact_phone"],
                )
            except ProviderError as error:
                form.add_service_error(error)
            else:
                messages.success(request, _("Provider %(name)s saved.") % {"name": saved.name})
                return redirect("provider-detail", provider_id=saved.pk)
        status = 400
    else:
        form = ProviderForm(editing=provider, initial=_provider_initial(provider))
        status = 200
    return render(
        request, "providers/provider_form.html", {"form": form, "provider": provider}, status=status
    )


def _provider_initial(provider: Provider | None) -> dict | None:
    if provider is None:
        return None
    fields = ("code", "name", "name_en", "credit_code", "contact_phone")
    return {field: getattr(provider, field) for field in fields}


@managers
def provider_add(request):
    return _provider_form_page(request, None)


@managers
def provider_edit(request, provider_id: int):
    return _provider_form_page(request, get_object_or_404(Provider, pk=provider_id))


def _contract_shown(contract: Contract, today) -> dict:
    return {
        "contract": contract,
        "status_name": CONTRACT_STATUS_NAMES[contract.status],
        "in_force": contract.status == Contract.Status.ACTIVE
        and contract.starts_on <= today <= contract.ends_on,
        "ended": contract.ends_on < today,
        "not_started": contract.starts_on > today,
        "area": [name_in_language(region) for region in contract.service_area.all()],
        "items": [
            {
                "name": name_in_language(item.service_item),
                "unit": item.service_item.get_unit_display(),
                "unit_price": item.unit_price,
                "visits": _visit_limits_text(item),
            }
            for item in contract.items.all()
        ],
    }


def _visit_limits_text(item: ContractItem) -> str:
    """How a per-hour item's visits are counted ("按30分钟取整，最长4小时"); "" for other units."""
    if item.service_item.unit != ServiceItem.Unit.HOUR:
        return ""
    hours, minutes = divmod(item.visit_max_minutes, 60)
    longest = (
        _("%(hours)s h") % {"hours": hours}
        if not minutes
        else _("%(minutes)s min") % {"minutes": item.visit_max_minutes}
    )
    return _("Rounded to %(increment)s min, at most %(longest)s") % {
        "increment": item.visit_increment_minutes,
        "longest": longest,
    }


def _provider_page(request, provider: Provider, *, reason_form=None, status=200):
    today = _today()
    can_manage = selectors.may_manage_providers(request.user)
    context = {
        "provider": provider,
        "name": name_in_language(provider),
        "contracts": [_contract_shown(c, today) for c in selectors.provider_contracts(provider=provider)],
        "status_changes": provider.status_changes.select_related("changed_by")[:10],
        "can_manage": can_manage,
        "reason_form": reason_form or ReasonForm(),
        "is_manager_view": not selectors.may_read_providers(request.user),
    }
    return render(request, "providers/detail.html", context, status=status)


@readers
def provider_detail(request, provider_id: int):
    provider = get_object_or_404(selectors.provider_pages_visible_to(request.user), pk=provider_id)
    return _provider_page(request, provider)


def _set_active(request, provider_id: int, *, active: bool):
    provider = get_object_or_404(Provider, pk=provider_id)
    form = ReasonForm(request.POST)
    if form.is_valid():
        write = services.reinstate_provider if active else services.suspend_provider
        try:
            write(by=request.user, provider=provider, reason=form.cleaned_data["reason"])
        except ProviderError as error:
            form.add_error("reason" if error.field == "reason" else None, error.detail)
        else:
            done = (
                _("%(name)s may record services again.")
                if active
                else _("%(name)s is suspended: its staff can no longer scan or void.")
            )
            messages.success(request, done % {"name": provider.name})
            return redirect("provider-detail", provider_id=provider.pk)
    provider.refresh_from_db()
    return _provider_page(request, provider, reason_form=form, status=400)


@managers
@require_POST
def provider_suspend(request, provider_id: int):
    return _set_active(request, provider_id, active=False)


@managers
@require_POST
def provider_reinstate(request, provider_id: int):
    return _set_active(request, provider_id, active=True)


# --- Contracts -------------------------------------------------------------------------------------


def _area_tree(selected: set[int]) -> list[dict]:
    """The region tree with what the form shows: each node's name, whether it is ticked, and
    whether its group opens (something inside it is ticked)."""

    def shown(node) -> dict:
        children = [shown(child) for child in node["children"]]
        region = node["region"]
        return {
            "region": region,
            "name": name_in_language(region),
            "checked": region.pk in selected,
            "open": any(child["checked"] or child["open"] for child in children),
            "children": children,
        }

    return [shown(node) for node in selectors.region_tree()]


def _selected_regions(form) -> set[int]:
    values = form["service_area"].value() or []
    selected = set()
    for value in values:
        try:
            selected.add(int(getattr(value, "pk", value)))
        except (TypeError, ValueError):
            continue
    return selected


def _contract_form_page(request, provider: Provider, contract: Contract | None):
    existing = (
        list(ContractItem.objects.filter(contract=contract).select_related("service_item"))
        if contract is not None
        else []
    )
    if request.method == "POST":
        form = ContractForm(request.POST)
        formset = ContractItemFormSet(request.POST, prefix="items")
        if form.is_valid() and formset.is_valid():
            data = form.cleaned_data
            try:
                saved = services.save_contract(
                    by=request.user,
                    provider=provider,
                    contract=contract,
                    number=data["number"],
                    starts_on=data["starts_on"],
                    ends_on=data["ends_on"],
                    status=data["status"],
                    regions=list(data["service_area"]),
                    items=formset.items(),
                )
            except ProviderError as error:
                form.add_service_error(error)
            else:
                messages.success(request, _("Contract %(number)s saved.") % {"number": saved.number})
                return redirect(reverse("provider-detail", args=[provider.pk]) + f"#contract-{saved.pk}")
        status = 400
    else:
        initial = {"status": Contract.Status.ACTIVE}
        if contract is not None:
            initial = {
                "number": contract.number,
                "starts_on": contract.starts_on,
                "ends_on": contract.ends_on,
                "status": contract.status,
                "service_area": list(contract.service_area.values_list("pk", flat=True)),
            }
        form = ContractForm(initial=initial)
        rows = [
            {
                "service_item": i.service_item,
                "unit_price": i.unit_price.amount,
                "visit_increment_minutes": i.visit_increment_minutes,
                "visit_max_minutes": i.visit_max_minutes,
            }
            for i in existing
        ]
        formset = ContractItemFormSet(prefix="items", initial=rows + [{}] * BLANK_ITEM_ROWS)
        status = 200
    context = {
        "provider": provider,
        "provider_name": name_in_language(provider),
        "contract": contract,
        "form": form,
        "formset": formset,
        "area": _area_tree(_selected_regions(form)),
        "existing_count": len(existing),
    }
    return render(request, "providers/contract_form.html", context, status=status)


@managers
def contract_add(request, provider_id: int):
    return _contract_form_page(request, get_object_or_404(Provider, pk=provider_id), None)


@managers
def contract_edit(request, contract_id: int):
    contract = get_object_or_404(Contract.objects.select_related("provider"), pk=contract_id)
    return _contract_form_page(request, contract.provider, contract)


# --- The service catalogue -------------------------------------------------------------------------


catalogue_readers = page_for(selectors.may_read_providers, NOT_READERS)


@catalogue_readers
def service_catalogue(request):
    items = [
        {"item": item, "name": name_in_language(item), "step": f"{item.quantity_step.normalize():f}"}
        for item in selectors.service_catalogue()
    ]
    can_manage = selectors.may_manage_providers(request.user) and request.user.has_perm(
        "providers.change_serviceitem"
    )
    return render(request, "providers/catalogue.html", {"items": items, "can_manage": can_manage})


def _service_item_page(request, service_item: ServiceItem | None):
    initial = {"unit": ServiceItem.Unit.VISIT, "quantity_step": "1", "is_active": True}
    if service_item is not None:
        fields = ("code", "name", "name_en", "unit", "category", "quantity_step", "is_active")
        initial = {field: getattr(service_item, field) for field in fields}
        initial["quantity_step"] = f"{service_item.quantity_step.normalize():f}"
    if request.method == "POST":
        form = ServiceItemForm(request.POST, editing=service_item, initial=initial)
        if form.is_valid():
            data = form.cleaned_data
            try:
                saved = services.save_service_item(
                    by=request.user,
                    service_item=service_item,
                    code=data.get("code", ""),
                    name=data["name"],
                    name_en=data["name_en"],
                    unit=data["unit"],
                    category=data["category"],
                    quantity_step=data["quantity_step"],
                    is_active=data["is_active"],
                )
            except ProviderError as error:
                form.add_service_error(error)
            else:
                messages.success(request, _("Service item %(name)s saved.") % {"name": saved.name})
                return redirect("service-catalogue")
        status = 400
    else:
        form = ServiceItemForm(editing=service_item, initial=initial)
        status = 200
    context = {"form": form, "service_item": service_item}
    return render(request, "providers/service_item_form.html", context, status=status)


def _may_change_catalogue(user) -> bool:
    return selectors.may_manage_providers(user) and user.has_perm("providers.change_serviceitem")


catalogue_managers = page_for(_may_change_catalogue, NOT_MANAGERS)


@catalogue_managers
def service_item_add(request):
    return _service_item_page(request, None)


@catalogue_managers
def service_item_edit(request, service_item_id: int):
    return _service_item_page(request, get_object_or_404(ServiceItem, pk=service_item_id))
