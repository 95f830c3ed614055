"""Reads of the providers app: which contract item a provider may deliver to whom, when."""

import datetime as dt

from providers.models import Contract, ContractItem


def contract_items_for(*, provider, on: dt.date):
    """The provider's priced items under contracts active on `on`, newest contract first."""
    return (
        ContractItem.objects.select_related("service_item", "contract")
        .filter(
            contract__provider=provider,
            contract__status=Contract.Status.ACTIVE,
            contract__starts_on__lte=on,
            contract__ends_on__gte=on,
            service_item__is_active=True,
        )
        .order_by("service_item__code", "-contract__starts_on", "-contract_id")
    )


def contracts_covering(*, contract_ids, region_path: str) -> set[int]:
    """Of these contracts, those whose service area covers the region at `region_path`.

    An area region covers its whole subtree, so it covers a community whose path starts with it.
    """
    through = Contract.service_area.through
    rows = through.objects.filter(contract_id__in=contract_ids).values_list("contract_id", "region__path")
    return {contract_id for contract_id, area_path in rows if region_path.startswith(area_path)}
