"""A provider manager runs their own team under /providers/<id>/: staff, devices, the month's
redemptions. Another provider's manager finds nothing there (404), service staff and finance are
refused (403), the city-wide bureau reads; a deactivated staff member or a revoked phone is
refused by the scanner API at once."""

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext
from rest_framework.test import APIClient

from config.roles import roles_of
from eligibility.models import RegionScope
from providers.errors import ProviderError
from providers.models import Device, StaffMember
from providers.selectors import month_totals
from providers.services import register_device, revoke_team_device, set_staff_active
from tests.e2e.conftest import PASSWORD, make_user
from tests.factories import ProviderFactory, StaffMemberFactory, make_community
from tests.vouchers import conftest as voucher_world
from tests.vouchers.conftest import MONTH, NOW, scan_and_confirm
from vouchers.models import Redemption, Voucher
from vouchers.services import issue_vouchers, redeem, void_redemption
from vouchers.tokens import voucher_token

world = voucher_world.world  # the vouchers' small world: a provider, its staff's phone, vouchers

VERIFY = "/api/v1/vouchers/verify/"
REDEEM = "/api/v1/redemptions/"
NEW_PASSWORD = "Lantern-river-2025"


def t(text: str) -> str:
    """`text` as a zh-Hans page shows it, HTML-escaped."""
    with translation.override("zh-hans"):
        return escape(gettext(text))


def api(token: str) -> APIClient:
    client = APIClient(HTTP_ACCEPT_LANGUAGE="en")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def code_of(response) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


def redeem_body(token, *, item="meal", quantity="1"):
    return {"token": token, "service_item": item, "quantity": quantity, "idempotency_key": uuid.uuid4().hex}


@dataclass
class Team:
    provider: object  # A: the world's contracted provider
    manager: object  # A's manager (role provider)
    staff: object  # A's service staff (role staff), with a signed-in phone
    token: str  # that phone's token
    other: object  # B, another provider
    other_manager: object
    other_device: object  # a phone of B's staff

    def url(self, name: str, *args, provider=None) -> str:
        return reverse(name, args=[(provider or self.provider).pk, *args])


@pytest.fixture
def team(world) -> Team:
    provider = world.contract.provider
    world.staff.user.groups.add(Group.objects.get(name="staff"))
    manager = make_user("manager-a", "provider", first_name="赵经理")
    StaffMemberFactory(user=manager, provider=provider, employee_number="M01", display_name="赵经理")
    other = ProviderFactory(name="暖阳助老")
    other_manager = make_user("manager-b", "provider")
    StaffMemberFactory(user=other_manager, provider=other, employee_number="M01")
    other_staff = StaffMemberFactory(user=make_user("staff-b", "staff"), provider=other)
    other_device, _ = register_device(user=other_staff.user, name="B phone")
    return Team(provider, manager, world.staff, world.device_token, other, other_manager, other_device)


def signed_in(client, user):
    client.force_login(user)
    return client


# --- Who sees what --------------------------------------------------------------------------------


def test_a_manager_reads_their_own_teams_pages(client, team):
    signed_in(client, team.manager)

    staff_page = client.get(team.url("team-staff")).content.decode()
    devices_page = client.get(team.url("team-devices")).content.decode()
    assert client.get(team.url("team-redemptions")).status_code == 200

    # The staff page lists each person with their number, role, devices and the actions
    assert team.staff.display_name in staff_page and team.staff.employee_number in staff_page
    assert t("Manager") in staff_page and t("Service staff") in staff_page
    assert team.url("team-staff-deactivate", team.staff.pk) in staff_page
    manager_member = team.manager.staff_member
    assert team.url("team-staff-deactivate", manager_member.pk) not in staff_page  # not themselves
    # The devices page shows the staff's phone and its revoke button, not B's
    device = team.staff.devices.get()
    assert device.token_prefix in devices_page and team.url("team-device-revoke", device.pk) in devices_page
    assert team.other_device.token_prefix not in devices_page
    # The tabs lead to the three pages of this provider
    for name in ("team-staff", "team-devices", "team-redemptions"):
        assert f'href="{team.url(name)}"' in staff_page


def test_the_home_pages_links_take_a_manager_to_their_own_team(client, team):
    signed_in(client, team.manager)
    for name, page in (
        ("team-my-staff", "team-staff"),
        ("team-my-devices", "team-devices"),
        ("team-my-redemptions", "team-redemptions"),
    ):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response.url == team.url(page)


def test_another_providers_manager_finds_nothing_and_changes_nothing(client, team, world):
    signed_in(client, team.other_manager)
    device = team.staff.devices.get()
    reads = [
        team.url("team-staff"),
        team.url("team-devices"),
        team.url("team-redemptions"),
        team.url("team-staff-add"),
        team.url("team-staff-deactivate", team.staff.pk),
    ]
    for url in reads:
        assert client.get(url).status_code == 404, url
    # Nor through their own provider's address with A's staff or device
    assert (
        client.get(team.url("team-staff-deactivate", team.staff.pk, provider=team.other)).status_code == 404
    )
    writes = {
        team.url("team-staff-deactivate", team.staff.pk): {"reason": "left"},
        team.url("team-device-revoke", device.pk): {},
        team.url("team-device-revoke", device.pk, provider=team.other): {},
        team.url("team-staff-add"): {
            "full_name": "钱多多",
            "employee_number": "X9",
            "username": "intruder",
            "password": NEW_PASSWORD,
        },
    }
    for url, data in writes.items():
        assert client.post(url, data).status_code == 404, url

    device.refresh_from_db()
    team.staff.refresh_from_db()
    assert device.revoked_at is None and team.staff.is_active
    assert not StaffMember.objects.filter(employee_number="X9").exists()
    assert api(team.token).post(VERIFY, {"token": world.token()}, format="json").status_code == 200


def test_service_staff_and_finance_are_refused_every_team_page(client, team):
    finance = make_user("finance", "finance")
    device = team.staff.devices.get()
    for user in (team.staff.user, finance):
        signed_in(client, user)
        for url in (team.url("team-staff"), team.url("team-devices"), team.url("team-redemptions")):
            assert client.get(url).status_code == 403, (user, url)
        assert client.get(reverse("team-my-staff")).status_code == 403
        assert client.post(team.url("team-device-revoke", device.pk)).status_code == 403
    device.refresh_from_db()
    assert device.revoked_at is None


def test_the_city_wide_bureau_reads_every_team_but_changes_none(client, team):
    bureau = make_user("bureau", "bureau")
    signed_in(client, bureau)
    device = team.staff.devices.get()

    for provider in (team.provider, team.other):
        for name in ("team-staff", "team-devices", "team-redemptions"):
            assert client.get(team.url(name, provider=provider)).status_code == 200
    staff_page = client.get(team.url("team-staff")).content.decode()
    devices_page = client.get(team.url("team-devices")).content.decode()
    assert team.staff.display_name in staff_page
    assert "deactivate/" not in staff_page and team.url("team-staff-add") not in staff_page
    assert "revoke/" not in devices_page

    assert client.get(team.url("team-staff-add")).status_code == 403
    assert client.post(team.url("team-staff-deactivate", team.staff.pk), {"reason": "x"}).status_code == 403
    assert client.post(team.url("team-device-revoke", device.pk)).status_code == 403
    device.refresh_from_db()
    team.staff.refresh_from_db()
    assert device.revoked_at is None and team.staff.is_active

    # A bureau administrator given only part of the city reads no team
    district = make_user("bureau-district", "bureau")
    RegionScope.objects.create(user=district, region=make_community("Q").parent.parent)
    signed_in(client, district)
    assert client.get(team.url("team-staff")).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(client, team):
    response = client.get(team.url("team-staff"))
    assert response.status_code == 302 and "/login/" in response.url


def test_the_nav_renders_nothing_without_a_provider_or_for_staff(team):
    request = RequestFactory().get("/")
    request.user = team.manager
    assert render_to_string("providers/_manager_nav.html", {}, request=request).strip() == ""
    nav = render_to_string("providers/_manager_nav.html", {"provider": team.provider}, request=request)
    assert team.url("team-staff") in nav and team.url("team-redemptions") in nav
    request.user = team.staff.user
    assert (
        render_to_string("providers/_manager_nav.html", {"provider": team.provider}, request=request).strip()
        == ""
    )


# --- Adding a staff member ------------------------------------------------------------------------


def add(client, team, **fields):
    data = {
        "full_name": "钱 小 红",
        "employee_number": "KL-007",
        "username": "qianxh",
        "password": NEW_PASSWORD,
    }
    return client.post(team.url("team-staff-add"), {**data, **fields})


def test_a_manager_adds_a_staff_member_who_can_then_sign_a_phone_in(client, team):
    signed_in(client, team.manager)
    assert client.get(team.url("team-staff-add")).status_code == 200

    response = add(client, team)

    assert response.status_code == 302 and response.url == team.url("team-staff")
    member = StaffMember.objects.select_related("user").get(provider=team.provider, employee_number="KL-007")
    assert (member.display_name, member.user.username, member.is_active) == ("钱 小 红", "qianxh", True)
    assert roles_of(member.user) == ["staff"]
    entry = LogEntry.objects.get(object_id=str(member.user.pk))
    assert entry.user == team.manager and entry.is_addition()
    assert "钱 小 红" in client.get(team.url("team-staff")).content.decode()

    # And they sign a phone in with the first password, and scan with it
    signed = APIClient().post(
        "/api/v1/auth/token/",
        {"username": "qianxh", "password": NEW_PASSWORD, "device_name": "红米"},
        format="json",
    )
    assert signed.status_code == 201, signed.content
    scanned = api(signed.json()["token"]).post(VERIFY, {"token": "not-a-voucher-code"}, format="json")
    assert scanned.json()["code"] == "invalid_token"
    # But they see no team page
    signed_in(client, member.user)
    assert client.get(team.url("team-staff")).status_code == 403


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"employee_number": "M01"},
            "employee_number",
            "Another staff member of this provider has this employee number.",
        ),
        ({"username": "manager-b"}, "username", "This username is taken."),
        ({"password": "12345678"}, "password", None),
        ({"username": "no spaces"}, "username", None),
        ({"full_name": ""}, "full_name", None),
    ],
)
def test_adding_refuses_bad_input_and_saves_nothing(client, team, fields, field, message):
    signed_in(client, team.manager)
    people = StaffMember.objects.count()

    response = add(client, team, **fields)

    assert response.status_code == 400
    assert response.context["form"].errors[field]
    if message:
        assert t(message) in response.content.decode()
    assert t("Nothing was saved. Please correct the fields marked below.") in response.content.decode()
    assert StaffMember.objects.count() == people


def test_the_same_employee_number_is_fine_at_another_provider(client, team):
    signed_in(client, team.other_manager)
    assert (
        client.post(
            team.url("team-staff-add", provider=team.other),
            {
                "full_name": "孙悦",
                "employee_number": team.staff.employee_number,
                "username": "sunyue",
                "password": NEW_PASSWORD,
            },
        ).status_code
        == 302
    )


# --- Deactivating a staff member ------------------------------------------------------------------


def test_deactivating_stops_their_scans_voids_and_pages_at_once(client, team, world):
    # Given a service the staff member recorded, and the staff member signed in to the pages too
    created = scan_and_confirm(api(team.token), redeem_body(world.token()))
    assert created.status_code == 201
    staff_browser = signed_in(client.__class__(), team.staff.user)
    assert staff_browser.get("/").status_code == 200
    signed_in(client, team.manager)
    assert t("Deactivate") in client.get(team.url("team-staff-deactivate", team.staff.pk)).content.decode()

    # When their manager deactivates them, with a reason
    response = client.post(team.url("team-staff-deactivate", team.staff.pk), {"reason": "已离职"})

    # Then their phone's scans and voids are refused not_permitted, whatever token they hold
    assert response.status_code == 302 and response.url == team.url("team-staff")
    voucher = world.token("subsidized")
    assert code_of(api(team.token).post(VERIFY, {"token": voucher}, format="json")) == (403, "not_permitted")
    assert code_of(api(team.token).post(REDEEM, redeem_body(voucher), format="json")) == (
        403,
        "not_permitted",
    )
    void_url = f"{REDEEM}{created.json()['id']}/void/"
    assert code_of(api(team.token).post(void_url, {"reason": "x"}, format="json")) == (403, "not_permitted")
    assert Redemption.objects.count() == 1 and not Redemption.objects.filter(void__isnull=False).exists()
    # Nor does the phone read its history any more (only the token check stands in the way there)
    assert code_of(api(team.token).get(REDEEM)) == (403, "not_permitted")
    # And they are signed out of the pages, and cannot sign a new phone in
    assert staff_browser.get("/").status_code == 302
    signing_in = APIClient().post(
        "/api/v1/auth/token/", {"username": team.staff.user.username, "password": PASSWORD}, format="json"
    )
    assert code_of(signing_in)[0] == 401
    # The page says so, and the action log holds who, when and why
    page = client.get(team.url("team-staff")).content.decode()
    assert t("Deactivated") in page and team.url("team-staff-reactivate", team.staff.pk) in page
    entry = LogEntry.objects.filter(object_id=str(team.staff.user.pk)).latest("action_time")
    assert entry.user == team.manager and "已离职" in entry.change_message

    # When they are reactivated, the same phone scans again
    client.post(team.url("team-staff-reactivate", team.staff.pk), {"reason": "回来上班"})
    assert api(team.token).post(VERIFY, {"token": voucher}, format="json").status_code == 200


def test_deactivating_needs_a_reason(client, team):
    signed_in(client, team.manager)
    response = client.post(team.url("team-staff-deactivate", team.staff.pk), {"reason": "  "})
    assert response.status_code == 400
    team.staff.refresh_from_db()
    assert team.staff.is_active


def test_a_manager_deactivates_neither_themselves_nor_another_manager(client, team):
    second = make_user("manager-a2", "provider")
    second_member = StaffMemberFactory(user=second, provider=team.provider)
    signed_in(client, team.manager)
    own = team.manager.staff_member
    for member in (own, second_member):
        response = client.post(team.url("team-staff-deactivate", member.pk), {"reason": "x"})
        assert response.status_code == 403
        member.refresh_from_db()
        assert member.is_active and member.user.is_active
    with pytest.raises(ProviderError) as refused:
        set_staff_active(by=team.manager, staff=own, active=False, reason="x")
    assert refused.value.code == "not_permitted"


# --- Revoking a device ----------------------------------------------------------------------------


def test_revoking_a_device_refuses_its_next_scan_and_keeps_the_others(client, team, world):
    spare, spare_token = register_device(user=team.staff.user, name="备用机")
    device = Device.objects.get(token_hash=Device.hash_token(team.token))
    signed_in(client, team.manager)

    response = client.post(team.url("team-device-revoke", device.pk))

    assert response.status_code == 302 and response.url == team.url("team-devices")
    assert code_of(api(team.token).post(VERIFY, {"token": world.token()}, format="json")) == (
        401,
        "not_authenticated",
    )
    assert api(spare_token).post(VERIFY, {"token": world.token()}, format="json").status_code == 200
    device.refresh_from_db()
    assert device.revoked_at is not None
    assert LogEntry.objects.get(object_id=str(device.pk), content_type__model="device").user == team.manager
    page = client.get(team.url("team-devices")).content.decode()
    assert team.url("team-device-revoke", device.pk) not in page
    assert team.url("team-device-revoke", spare.pk) in page
    assert client.get(team.url("team-device-revoke", spare.pk)).status_code == 405  # a POST only


def test_the_service_refuses_another_providers_device(team):
    with pytest.raises(ProviderError) as refused:
        revoke_team_device(by=team.manager, device=team.other_device)
    assert refused.value.code == "not_permitted"
    team.other_device.refresh_from_db()
    assert team.other_device.revoked_at is None


# --- The month's redemptions ----------------------------------------------------------------------


def serve(world, tier: str, item: str, quantity: str, *, staff):
    return redeem(
        token=world.token(tier),
        service_item_code=item,
        quantity=Decimal(quantity),
        idempotency_key=uuid.uuid4().hex,
        staff=staff,
        now=NOW,
    ).redemption


@pytest.fixture
def served_month(team, world):
    """November: cleaning 1.5 h for the low-fee senior (¥60.00: ¥42.00 + ¥18.00), a meal for the
    subsidized one (¥15.00, all government), 0.25 h for the paying one (¥10.00, all senior), and
    a meal for the low-fee one that was voided (¥15.00, listed, not counted). October: one hour
    of cleaning. Another provider's services never appear."""
    staff = team.staff
    serve(world, "low_fee", "cleaning", "1.5", staff=staff)
    serve(world, "subsidized", "meal", "1", staff=staff)
    serve(world, "paid", "cleaning", "0.25", staff=staff)
    voided = serve(world, "low_fee", "meal", "1", staff=staff)
    void_redemption(redemption_id=voided.pk, reason="送错了", user=staff.user, now=NOW)
    october = dt.date(2026, 10, 1)
    issue_vouchers(period=october, now=NOW - dt.timedelta(days=40))
    october_voucher = Voucher.objects.get(senior=world.vouchers["low_fee"].senior, period=october)
    redeem(
        token=voucher_token(october_voucher),
        service_item_code="cleaning",
        quantity=Decimal("1"),
        idempotency_key=uuid.uuid4().hex,
        staff=staff,
        now=NOW - dt.timedelta(days=30),
    )
    return voided


def test_the_months_totals_are_exact_to_the_fen(client, team, served_month):
    totals = month_totals(provider=team.provider, month=MONTH)
    assert (totals.count, totals.voided) == (3, 1)
    assert (totals.amount.amount, totals.government_share.amount, totals.senior_share.amount) == (
        Decimal("85.00"),
        Decimal("57.00"),
        Decimal("28.00"),
    )

    signed_in(client, team.manager)
    page = client.get(team.url("team-redemptions")).content.decode()  # this month by default

    def figure(element_id):
        return re.search(rf'id="{element_id}">([^<]*)<', page).group(1)

    assert [figure(i) for i in ("total-count", "total-amount", "total-government", "total-senior")] == [
        "3",
        "¥85.00",
        "¥57.00",
        "¥28.00",
    ]
    assert page.count('class="service service-voided"') == 1 and page.count('<li class="service') == 4
    # Newest first: the voided meal was the last one recorded
    assert page.index('class="service service-voided"') < page.index('<li class="service">')

    october = client.get(team.url("team-redemptions") + "?month=2026-10").content.decode()
    assert 'id="total-amount">¥40.00<' in october and october.count('<li class="service') == 1
    assert '<option value="2026-10" selected>' in october
    assert month_totals(provider=team.other, month=MONTH).count == 0


def test_the_redemptions_page_masks_the_senior_and_never_shows_an_id_number(
    client, team, world, served_month
):
    signed_in(client, team.manager)
    page = client.get(team.url("team-redemptions")).content.decode()
    for tier in ("low_fee", "subsidized", "paid"):
        senior = world.vouchers[tier].senior
        assert senior.masked_name in page
        assert senior.name not in page
        assert senior.id_card_number not in page and senior.id_card_number[-4:] + "<" not in page
    assert world.community.name in page and team.staff.display_name in page


def test_a_month_that_is_not_one_is_refused_with_a_message(client, team):
    signed_in(client, team.manager)
    response = client.get(team.url("team-redemptions") + "?month=2026-13")
    assert response.status_code == 400
    assert t("That is not a month; showing this month.") in response.content.decode()


def test_the_team_lists_take_a_fixed_number_of_queries(client, team, django_assert_max_num_queries):
    for n in range(15):
        member = StaffMemberFactory(provider=team.provider, user=make_user(f"s{n}", "staff"))
        register_device(user=member.user)
    signed_in(client, team.manager)
    client.get(team.url("team-staff"))  # warm the session and permission caches
    with django_assert_max_num_queries(12):
        page = client.get(team.url("team-staff")).content.decode()
    assert page.count('<li class="service') == 17
    with django_assert_max_num_queries(12):
        assert client.get(team.url("team-devices")).content.decode().count('<li class="service') == 16


def test_the_redemptions_page_takes_a_fixed_number_of_queries(
    client, team, served_month, django_assert_max_num_queries
):
    signed_in(client, team.manager)
    client.get(team.url("team-redemptions"))  # warm the session and permission caches
    with django_assert_max_num_queries(12):
        page = client.get(team.url("team-redemptions")).content.decode()
    assert page.count('<li class="service') == 4


def test_a_manager_does_not_switch_on_an_account_the_bureau_switched_off(client, team):
    # Given the bureau switched the staff member's account off on its accounts page
    type(team.staff.user).objects.filter(pk=team.staff.user.pk).update(is_active=False)
    team.staff.refresh_from_db()

    # Then their manager cannot switch it on from the team page
    with pytest.raises(ProviderError) as refused:
        set_staff_active(by=team.manager, staff=team.staff, active=True, reason="回来上班")
    assert refused.value.code == "not_permitted"
    team.staff.user.refresh_from_db()
    assert not team.staff.user.is_active
