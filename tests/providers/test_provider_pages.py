"""The bureau's providers pages (/providers/): creating, changing, suspending and reinstating a
provider, with the credit code and hotline checked; who may open what; and a suspended
provider's staff refused at the scanner API, whatever device token they hold."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext
from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength

from providers.errors import ProviderError
from providers.models import Provider, ProviderStatusChange, ServiceItem
from providers.services import (
    CREDIT_CODE_REASONS,
    normalise_credit_code,
    reinstate_provider,
    save_provider,
    suspend_provider,
)
from tests.e2e.conftest import make_user
from tests.factories import ProviderFactory, StaffMemberFactory, make_community, make_priced_contract
from tests.vouchers.conftest import NOW, build_world, check_in_and_out, scan_and_confirm
from vouchers.models import Redemption


def t(text, language: str = "zh-hans") -> str:
    """A msgid (or a lazy message) as a page in `language` shows it, HTML-escaped: the zh-Hans of
    new messages once their translations are merged, their English until then."""
    with translation.override(language):
        return escape(gettext(text) if isinstance(text, str) else str(text))


def credit_code(body17: str = "91330106MA2H7K3Q1") -> str:
    """A valid unified social credit code: 17 characters and their check character."""
    return body17 + uscc.calc_check_digit(body17)


def wrong_check(code: str) -> str:
    """The same code with another (wrong) check character."""
    return code[:-1] + ("1" if code[-1] != "1" else "2")


@pytest.fixture
def bureau(db):
    return make_user("bureau-admin", "bureau", first_name="王秀英")


@pytest.fixture
def provider(db):
    provider = ProviderFactory(code="kangle", name="康乐居家养老", contact_phone="0571-87061234")
    make_priced_contract(area=[make_community("P")], provider=provider)
    return provider


def form_data(**changes):
    data = {
        "code": "nuanyang",
        "name": "暖阳助老服务中心",
        "name_en": "Nuanyang Elderly Care",
        "credit_code": credit_code(),
        "contact_phone": "0571 8706 5678",
    }
    return {**data, **changes}


# --- The unified social credit code -------------------------------------------------------------


def test_a_credit_code_is_checked_and_normalised():
    code = credit_code()
    # Lower case, spaces and full-width characters are what people type; the code is stored plain
    typed = " ".join(code.lower()).translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    assert normalise_credit_code(typed) == code


@pytest.mark.parametrize(
    ("typed", "reason", "en"),
    [
        (wrong_check(credit_code()), InvalidChecksum, "check character"),
        (credit_code()[:-2], InvalidLength, "18 characters"),
        ("91330106MA2H7K3QI" + "X", InvalidFormat, "capital letters"),
    ],
)
def test_a_bad_credit_code_is_refused_saying_what_is_wrong(typed, reason, en):
    with pytest.raises(ProviderError) as refused:
        normalise_credit_code(typed)
    assert refused.value.code == "invalid_credit_code" and refused.value.field == "credit_code"
    with translation.override("zh-hans"):
        assert refused.value.detail == t(CREDIT_CODE_REASONS[reason])
    with translation.override("en"):
        assert en in refused.value.detail


# --- Creating and changing a provider -------------------------------------------------------------


def test_the_bureau_creates_a_provider_on_its_page(client, bureau):
    client.force_login(bureau)
    assert client.get("/providers/new/").status_code == 200

    response = client.post("/providers/new/", form_data(credit_code=credit_code().lower()))

    provider = Provider.objects.get(code="nuanyang")
    assert response.status_code == 302 and response["Location"] == f"/providers/{provider.pk}/"
    assert (provider.credit_code, provider.contact_phone) == (credit_code(), "0571-87065678")
    assert provider.is_active
    logged = LogEntry.objects.get(object_id=str(provider.pk), content_type__model="provider")
    assert logged.user_id == bureau.pk and logged.is_addition()
    page = client.get(response["Location"]).content.decode()
    assert "暖阳助老服务中心" in page and "0571-87065678" in page


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"credit_code": wrong_check(credit_code())}, CREDIT_CODE_REASONS[InvalidChecksum]),
        ({"contact_phone": "12345"}, "电话号码格式不对"),
        ({"name": "  "}, "This field is required."),
    ],
)
def test_a_provider_with_bad_input_is_refused_on_the_page_and_nothing_is_saved(
    client, bureau, changes, message
):
    client.force_login(bureau)

    response = client.post("/providers/new/", form_data(**changes))

    assert response.status_code == 400
    assert t(message) in response.content.decode()
    assert not Provider.objects.filter(code="nuanyang").exists()


def test_every_wrong_field_is_marked_at_once(client, bureau):
    client.force_login(bureau)

    page = client.post(
        "/providers/new/", form_data(credit_code=wrong_check(credit_code()), contact_phone="12345")
    ).content.decode()

    assert t(CREDIT_CODE_REASONS[InvalidChecksum]) in page and "电话号码格式不对" in page


def test_a_credit_code_or_code_taken_by_another_provider_is_refused(bureau, provider):
    with pytest.raises(ProviderError) as same_credit:
        save_provider(by=bureau, **form_data(credit_code=provider.credit_code))
    with pytest.raises(ProviderError) as same_code:
        save_provider(by=bureau, **form_data(code="kangle"))
    assert same_credit.value.code == same_code.value.code == "duplicate_provider"
    assert (same_credit.value.field, same_code.value.field) == ("credit_code", "code")


def test_editing_keeps_the_code_and_logs_what_changed(client, bureau, provider):
    client.force_login(bureau)

    response = client.post(
        f"/providers/{provider.pk}/edit/",
        form_data(code="renamed", name="康乐居家养老服务有限公司", credit_code=provider.credit_code),
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.code == "kangle"  # fixed once created: commands and exports use it
    assert provider.name == "康乐居家养老服务有限公司"
    change = LogEntry.objects.filter(object_id=str(provider.pk), content_type__model="provider").get()
    assert "name" in change.change_message and change.user_id == bureau.pk


# --- Suspending and reinstating -------------------------------------------------------------------


def test_suspending_and_reinstating_record_the_reason_who_and_when(client, bureau, provider):
    client.force_login(bureau)

    suspended = client.post(f"/providers/{provider.pk}/suspend/", {"reason": "多次虚报服务时长"})

    assert suspended.status_code == 302
    provider.refresh_from_db()
    assert not provider.is_active
    change = ProviderStatusChange.objects.get(provider=provider)
    assert (change.is_active, change.reason, change.changed_by) == (False, "多次虚报服务时长", bureau)
    page = client.get(f"/providers/{provider.pk}/").content.decode()
    assert "多次虚报服务时长" in page and "王秀英" in page
    assert t("Reinstate this provider") in page and t("Suspend this provider") not in page

    reinstated = client.post(f"/providers/{provider.pk}/reinstate/", {"reason": "整改完成"})

    assert reinstated.status_code == 302
    provider.refresh_from_db()
    assert provider.is_active
    assert list(provider.status_changes.values_list("is_active", "reason")) == [
        (True, "整改完成"),
        (False, "多次虚报服务时长"),
    ]


def test_a_suspension_needs_a_reason_and_a_post(client, bureau, provider):
    client.force_login(bureau)

    assert client.get(f"/providers/{provider.pk}/suspend/").status_code == 405
    refused = client.post(f"/providers/{provider.pk}/suspend/", {"reason": "   "})

    assert refused.status_code == 400
    provider.refresh_from_db()
    assert provider.is_active and not provider.status_changes.exists()


def test_suspending_twice_is_refused(bureau, provider):
    suspend_provider(by=bureau, provider=provider, reason="调查中")
    with pytest.raises(ProviderError) as again:
        suspend_provider(by=bureau, provider=provider, reason="调查中")
    assert again.value.code == "invalid_input"
    assert provider.status_changes.count() == 1


@pytest.fixture
def world(db, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


def scan(world, key):
    """A meal for the low-fee senior, recorded as the scanner does (confirming the senior's share)."""
    body = {"token": world.token(), "service_item": "meal", "quantity": "1", "idempotency_key": key}
    return scan_and_confirm(world.client(), body)


def test_a_suspended_providers_staff_can_neither_scan_nor_void_with_the_token_they_hold(world, bureau):
    # Given a service scanned from a signed-in phone
    recorded = scan(world, "scan-before-1")
    assert recorded.status_code == 201

    # When the bureau suspends the provider
    suspend_provider(by=bureau, provider=world.staff.provider, reason="资质过期")

    # Then the same phone's scan and void are refused at once, and nothing is written
    refused_scan = scan(world, "scan-after-01")
    void_url = f"/api/v1/redemptions/{recorded.json()['id']}/void/"
    refused_void = world.client().post(void_url, {"reason": "录错了"}, format="json")
    for response in (refused_scan, refused_void):
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "not_permitted"
    assert Redemption.objects.count() == 1 and not Redemption.objects.filter(void__isnull=False).exists()

    # And once reinstated, the same phone scans again
    reinstate_provider(by=bureau, provider=world.staff.provider, reason="资质已更新")
    assert scan(world, "scan-after-02").status_code == 201


# --- Who may open what ----------------------------------------------------------------------------


def test_a_provider_manager_is_sent_to_their_own_page_and_reads_it_only(client, provider):
    manager = make_user("kangle-boss", "provider")
    StaffMemberFactory(user=manager, provider=provider)
    other = ProviderFactory(code="other", name="别家服务")
    client.force_login(manager)

    listed = client.get("/providers/")
    own = client.get(f"/providers/{provider.pk}/")

    assert listed.status_code == 302 and listed["Location"] == f"/providers/{provider.pk}/"
    page = own.content.decode()
    assert own.status_code == 200
    assert "¥40.00" in page and "¥15.00" in page and provider.contracts.get().number in page
    assert (
        f"/providers/{provider.pk}/edit/" not in page
        and "/suspend/" not in page
        and "/contracts/" not in page
    )
    assert client.get(f"/providers/{other.pk}/").status_code == 404
    # Nor may they change anything, even by posting
    assert client.post(f"/providers/{provider.pk}/suspend/", {"reason": "x"}).status_code == 403
    assert client.get(f"/providers/{provider.pk}/contracts/new/").status_code == 403
    assert client.get(f"/providers/contracts/{provider.contracts.get().pk}/").status_code == 403
    assert client.post("/providers/new/", form_data()).status_code == 403
    provider.refresh_from_db()
    assert provider.is_active and not Provider.objects.filter(code="nuanyang").exists()


@pytest.mark.parametrize("role", ["staff", "worker", "officer"])
def test_staff_and_registry_roles_may_not_open_the_providers_pages(client, provider, role):
    user = make_user(f"a-{role}", role)
    if role == "staff":
        StaffMemberFactory(user=user, provider=provider)
    client.force_login(user)

    for url in ("/providers/", f"/providers/{provider.pk}/", "/providers/catalogue/", "/providers/new/"):
        assert client.get(url).status_code == 403, url


def test_finance_reads_providers_and_contracts_but_changes_nothing(client, provider):
    client.force_login(make_user("accountant", "finance"))

    listed = client.get("/providers/").content.decode()
    page = client.get(f"/providers/{provider.pk}/").content.decode()

    assert "康乐居家养老" in listed and "/providers/new/" not in listed
    assert "¥40.00" in page and "/contracts/new/" not in page and "/suspend/" not in page
    assert client.get(f"/providers/{provider.pk}/edit/").status_code == 403
    assert client.post(f"/providers/{provider.pk}/suspend/", {"reason": "x"}).status_code == 403


def test_a_bureau_administrator_of_part_of_the_city_reads_but_does_not_manage(client, provider):
    district = make_community("Q").parent.parent
    client.force_login(make_user("district-admin", "bureau", region=district))

    assert client.get("/providers/").status_code == 200
    assert client.get("/providers/new/").status_code == 403
    assert client.post(f"/providers/{provider.pk}/suspend/", {"reason": "x"}).status_code == 403


def test_the_list_shows_status_and_contracts_in_force_and_finds_by_name(client, bureau, provider):
    ProviderFactory(code="idle", name="闲置家政", is_active=False)
    client.force_login(bureau)

    everyone = client.get("/providers/").content.decode()
    found = client.get("/providers/", {"q": "闲置"}).content.decode()

    assert "康乐居家养老" in everyone and "闲置家政" in everyone
    assert "已暂停" in everyone  # the idle provider
    assert everyone.count(t("Serving")) == 1
    en = client.get("/providers/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 contract in force" in en and "0 contracts in force" in en
    assert "闲置家政" in found and "康乐居家养老" not in found


# --- The service catalogue ------------------------------------------------------------------------


def test_the_bureau_sets_an_items_billing_increment_on_the_catalogue_page(client, bureau, provider):
    cleaning = ServiceItem.objects.get(code="cleaning")
    assert cleaning.quantity_step == Decimal("0.01")  # an hourly item's default: as scanned before
    client.force_login(bureau)
    assert "0.01" in client.get("/providers/catalogue/").content.decode()
    data = {
        "code": "cleaning",
        "name": "助洁",
        "name_en": "Cleaning",
        "unit": "hour",
        "category": "care",
        "quantity_step": "0.5",
        "is_active": "on",
    }

    saved = client.post(f"/providers/catalogue/{cleaning.pk}/", data)
    refused = client.post(f"/providers/catalogue/{cleaning.pk}/", {**data, "quantity_step": "0"})

    assert saved.status_code == 302
    assert refused.status_code == 400
    cleaning.refresh_from_db()
    assert cleaning.quantity_step == Decimal("0.50")
    with translation.override("en"):
        shown = client.get("/providers/catalogue/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Billed in steps of 0.5 hour" in shown


def test_finance_reads_the_catalogue_and_cannot_change_it(client, provider):
    client.force_login(make_user("accountant", "finance"))
    cleaning = ServiceItem.objects.get(code="cleaning")

    assert client.get("/providers/catalogue/").status_code == 200
    assert client.get(f"/providers/catalogue/{cleaning.pk}/").status_code == 403


def test_the_home_page_leads_the_bureau_and_finance_to_the_providers(client, bureau):
    client.force_login(bureau)
    assert 'href="/providers/"' in client.get("/").content.decode()
    client.force_login(make_user("accountant", "finance"))
    assert 'href="/providers/"' in client.get("/").content.decode()


def test_the_contract_period_is_shown_with_its_area(client, bureau, provider):
    contract = provider.contracts.get()
    contract.starts_on, contract.ends_on = dt.date(2026, 1, 1), dt.date(2026, 12, 31)
    contract.save()
    client.force_login(bureau)

    page = client.get(f"/providers/{provider.pk}/").content.decode()

    assert (
        t("%(start)s to %(end)s").replace("%(start)s", "2026-01-01").replace("%(end)s", "2026-12-31") in page
    )
    assert contract.service_area.get().name in page


def test_an_items_unit_cannot_change_once_services_were_recorded_in_it(world, monkeypatch):
    from providers.errors import ProviderError
    from providers.services import save_service_item

    bureau = make_user("catalogue-bureau", "bureau")
    cleaning = ServiceItem.objects.get(code="cleaning")
    values = {"name": cleaning.name, "category": cleaning.category, "quantity_step": "0.5"}
    save_service_item(by=bureau, service_item=cleaning, unit="hour", **values)  # the same unit: fine
    assert check_in_and_out(world, monkeypatch, minutes=60).status_code == 201  # an hour of cleaning

    with pytest.raises(ProviderError) as refused:
        save_service_item(by=bureau, service_item=cleaning, unit="visit", **values)
    assert (refused.value.code, refused.value.field) == ("invalid_input", "unit")
    cleaning.refresh_from_db()
    assert cleaning.unit == "hour"
