"""The bureau's accounts page: people get a role and the region or provider they work in."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.urls import reverse

from config.roles import roles_of
from eligibility.selectors import scope_region, visible_to
from providers.errors import ProviderError
from providers.models import StaffMember
from providers.services import save_account
from tests.e2e.conftest import make_user
from tests.factories import ProviderFactory, SeniorFactory, make_community

STRONG = "Xihu-care-2026!"


@pytest.fixture
def bureau(db):
    return make_user("chief", "bureau", first_name="周立新")


def test_the_bureau_creates_a_worker_who_then_sees_only_their_community(client, bureau):
    # Given two communities with a senior each
    mine, other = make_community("A"), make_community("B")
    SeniorFactory(community=mine, name="张秀兰")
    SeniorFactory(community=other, name="赵德明")
    client.force_login(bureau)

    # When the bureau creates a worker for community A on the accounts page
    response = client.post(
        reverse("accounts-add"),
        {
            "username": "chen",
            "full_name": "陈晓燕",
            "role": "worker",
            "region": mine.pk,
            "password": STRONG,
            "is_active": "on",
        },
    )

    # Then the worker exists in the worker role, scoped to A, sees A's senior only, and it is logged
    assert response.status_code == 302, response.content.decode()[:800]
    worker = get_user_model().objects.get(username="chen")
    assert roles_of(worker) == ["worker"] and scope_region(worker) == mine
    assert list(visible_to(worker).values_list("name", flat=True)) == ["张秀兰"]
    assert worker.check_password(STRONG)
    assert LogEntry.objects.filter(user=bureau, object_id=str(worker.pk)).exists()


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"role": "worker"}, "region", "invalid_input"),
        ({"role": "staff"}, "provider", "invalid_input"),
        ({"role": "worker", "region": "subdistrict"}, "region", "invalid_input"),
        ({"role": "officer", "region": "community"}, "region", "invalid_input"),
        ({"role": "finance", "password": "123"}, "password", "weak_password"),
        ({"role": "finance", "username": "chief"}, "username", "duplicate_username"),
    ],
)
def test_an_account_that_does_not_fit_its_role_is_refused_at_its_field(bureau, fields, field, code):
    community = make_community("A")
    regions = {"community": community, "subdistrict": community.parent}
    values = {"username": "new", "full_name": "新人", "password": STRONG, **fields}
    if "region" in values:
        values["region"] = regions[values["region"]]
    with pytest.raises(ProviderError) as refusal:
        save_account(by=bureau, **values)
    assert (refusal.value.code, refusal.value.field) == (code, field)
    assert not get_user_model().objects.filter(username="new").exists()


def test_staff_get_their_provider_and_lose_it_with_the_role(bureau):
    provider = ProviderFactory()
    made = save_account(
        by=bureau, username="li", full_name="李红梅", role="staff", provider=provider, password=STRONG
    )
    staff = StaffMember.objects.get(user=made.user)
    assert (staff.provider, staff.is_active) == (provider, True)

    # When the same person becomes finance staff, they no longer scan for the provider
    save_account(by=bureau, user=made.user, full_name="李红梅", role="finance")
    staff.refresh_from_db()
    assert not staff.is_active and roles_of(get_user_model().objects.get(pk=made.user.pk)) == ["finance"]


def test_the_bureau_cannot_lock_itself_out(bureau):
    with pytest.raises(ProviderError) as refusal:
        save_account(by=bureau, user=bureau, full_name="周立新", role="worker", region=make_community())
    assert refusal.value.code == "not_permitted"


@pytest.mark.parametrize("role", ["worker", "officer", "finance", "provider", "staff"])
def test_only_the_bureau_opens_the_accounts_page(client, db, role):
    client.force_login(make_user("someone", role))
    assert client.get(reverse("accounts-list")).status_code == 403


def test_the_accounts_page_lists_people_with_role_and_place(client, bureau):
    community = make_community("A")
    save_account(
        by=bureau, username="chen", full_name="陈晓燕", role="worker", region=community, password=STRONG
    )
    client.force_login(bureau)
    page = client.get(reverse("accounts-list")).content.decode()
    assert "陈晓燕" in page and community.name in page


def test_a_bureau_administrator_of_part_of_the_city_manages_no_accounts(client, bureau):
    # Given a bureau administrator whose account is limited to one district
    district = make_community("D").parent.parent
    save_account(
        by=bureau, username="district", full_name="区管理员", role="bureau", region=district, password=STRONG
    )
    limited = get_user_model().objects.get(username="district")
    client.force_login(limited)

    # Then the accounts page is refused, and so is giving themselves the whole city
    assert client.get(reverse("accounts-list")).status_code == 403
    with pytest.raises(ProviderError, match="not_permitted"):
        save_account(by=limited, user=limited, full_name="区管理员", role="bureau", region=None)
    assert scope_region(get_user_model().objects.get(pk=limited.pk)) == district


def test_nobody_changes_their_own_role_or_region(bureau):
    community = make_community("A")
    with pytest.raises(ProviderError) as refusal:
        save_account(by=bureau, user=bureau, full_name="周立新", role="bureau", region=community)
    assert refusal.value.code == "not_permitted"
    # But their own name they may change
    save_account(by=bureau, user=bureau, full_name="周立新（局）", role="bureau")
    assert get_user_model().objects.get(pk=bureau.pk).first_name == "周立新（局）"
