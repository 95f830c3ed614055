"""Whom a senior calls: the community's contact and the hotlines of the providers serving it."""

import datetime as dt

from providers.models import Contract
from tests.factories import ContractFactory, ProviderFactory
from vouchers.selectors import contacts_for_community, voucher_contacts


def test_the_community_contact_and_every_provider_whose_active_contract_covers_it(world):
    voucher = world.vouchers["low_fee"]
    community = world.community
    community.contact_name, community.contact_phone = "陈晓燕", "0571-87991001"
    community.save()
    on = voucher.valid_from
    covering = world.contract.provider  # its contract covers the community's subdistrict
    covering.contact_phone = "0571-88152468"
    covering.save()
    elsewhere = ProviderFactory()
    ContractFactory(provider=elsewhere, area=[world.other_community])
    lapsed = ProviderFactory()
    ContractFactory(provider=lapsed, area=[community], status=Contract.Status.SUSPENDED)
    ended = ProviderFactory()
    ContractFactory(provider=ended, area=[community], starts_on=on, ends_on=on + dt.timedelta(days=20))

    contacts = voucher_contacts(voucher)

    assert (contacts.worker_name, contacts.worker_phone) == ("陈晓燕", "0571-87991001")
    phones = {p.name: p.phone for p in contacts.providers}
    assert phones == {covering.name: "0571-88152468", ended.name: ""}
    later = contacts_for_community(community=community, on=on + dt.timedelta(days=25))
    assert [p.name for p in later.providers] == [covering.name]


def test_a_community_contact_phone_in_the_wrong_form_is_refused_with_a_clear_message(world):
    from django.core.exceptions import ValidationError

    community = world.community
    community.contact_phone = "0571 8799 1001"
    try:
        community.full_clean()
    except ValidationError as error:
        assert "contact_phone" in error.message_dict
    else:
        raise AssertionError("a phone with spaces passed")
    community.contact_phone = "0571-87991001"
    community.full_clean()
