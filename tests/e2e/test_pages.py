"""The pages people use, through Django's test client: sign-in and sign-out, each role's home,
the senior's voucher page, error pages, the admin's read-only ledger, and no asset from the
internet anywhere."""

import datetime as dt
import json
import re
import uuid

import pytest
from django.contrib import admin
from django.db.models import F
from django.test import RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.html import escape
from django.utils.translation import gettext

from config import views
from config.roles import ROLE_NAMES
from eligibility.models import Senior
from providers.models import StaffMember
from providers.services import register_device
from tests.e2e.conftest import PASSWORD, make_user
from tests.factories import ProviderFactory, make_community, make_id_card_number
from vouchers.models import Redemption, Voucher
from vouchers.tokens import make_token

# Any src/href/action that leaves the server: http://, https:// or protocol-relative //.
EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
LINK_CARD = re.compile(r'class="link-card" href="([^"]+)"')


def t(text: str, language: str = "zh-hans") -> str:
    """`text` as a page in `language` shows it, HTML-escaped."""
    with translation.override(language):
        return escape(gettext(text))


def role_name(role: str, language: str = "zh-hans") -> str:
    with translation.override(language):
        return escape(str(ROLE_NAMES[role]))


def url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def assert_local_assets_only(response):
    html = response.content.decode()
    assert not EXTERNAL.search(html), EXTERNAL.search(html).group(0)


# --- Sign-in and sign-out ---


def test_login_page_is_in_chinese_by_default(client, db):
    # When someone opens the sign-in page with no language preference
    response = client.get(reverse("login"))

    # Then it is in simplified Chinese, with labelled fields
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in response.content.decode()
    assert '<label for="id_username">用户名</label>' in response.content.decode()
    assert '<label for="id_password">密码</label>' in response.content.decode()
    assert_local_assets_only(response)


def test_login_page_switches_to_english_and_back(client, db):
    # When the visitor picks English in the header's language switch
    switched = client.post(reverse("set_language"), {"language": "en", "next": reverse("login")})

    # Then they come back to the sign-in page, now in English
    assert switched.status_code == 302 and switched.url == reverse("login")
    page = client.get(reverse("login")).content.decode()
    assert '<html lang="en">' in page
    assert '<label for="id_username">Username</label>' in page
    # And the switch now offers Chinese, posting to set_language and keeping the page
    assert 'name="language" value="zh-hans"' in page
    assert f'name="next" value="{reverse("login")}"' in page


@pytest.mark.parametrize(
    ("language", "message"),
    [("zh-hans", "请输入一个正确的"), ("en", "Please enter a correct username and password")],
)
def test_a_wrong_password_is_explained_in_the_users_language(client, role_users, language, message):
    response = client.post(
        reverse("login"),
        {"username": "finance", "password": "wrong-password"},
        HTTP_ACCEPT_LANGUAGE=language,
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert 'role="alert"' in response.content.decode()


def test_signing_in_lands_on_home_which_greets_by_name_and_role(client, role_users):
    # (finance and the bureau give a second factor first: tests/test_second_factor.py)
    response = client.post(
        reverse("login"),
        {"username": "worker", "password": PASSWORD},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert response.redirect_chain[-1][0] == reverse("home")
    page = response.content.decode()
    assert "陈丽" in page
    assert "Community worker" in page


def test_sign_out_needs_a_post(client, role_users):
    # Given a signed-in user
    client.force_login(role_users["worker"])

    # When something only fetches the sign-out address, nobody is signed out
    assert client.get(reverse("logout")).status_code == 405
    assert client.get(reverse("home")).status_code == 200

    # And when the sign-out button posts, the user is signed out and sent to the sign-in page
    signed_out = client.post(reverse("logout"))
    assert signed_out.status_code == 302 and signed_out.url == reverse("login")
    assert client.get(reverse("home")).url.startswith(reverse("login"))


def test_the_header_shows_who_is_signed_in_on_every_page(client, role_users):
    # Given someone with two roles
    user = make_user("two-hats", "provider", "staff", first_name="周老板")
    client.force_login(user)

    # When they open any page, even a missing one
    page = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    # Then the header names them and both roles, and offers a sign-out form that posts
    header = page[page.index("<header") : page.index("</header>")]
    assert "周老板" in header
    assert role_name("provider", "en") in header and role_name("staff", "en") in header
    assert f'method="post" action="{reverse("logout")}"' in header


# --- Home, per role ---


def expected_links(role: str) -> set[str]:
    settlement = {url_or_none("billing-periods")} - {None}
    return {
        "bureau": {
            "/registry/",
            "/policies/",
            "/providers/",
            "/accounts/",
            "/api/docs/",
            "/visits/",
            *settlement,
        },
        "officer": {"/registry/", "/visits/"},
        "worker": {"/registry/", "/visits/"},
        # A manager's links: their provider and its team (each address leads to their own provider's),
        # and their own provider's monthly statements
        "provider": {
            "/providers/",
            "/providers/staff/",
            "/providers/devices/",
            "/providers/redemptions/",
            "/scan/",
            "/api/docs/",
            *settlement,
        },
        "staff": {"/scan/", "/api/docs/"},
        "finance": {*settlement, "/providers/"},
    }[role]


@pytest.mark.parametrize("role", list(ROLE_NAMES))
def test_home_shows_each_role_its_name_and_its_pages(client, role_users, role):
    client.force_login(role_users[role])

    page = client.get(reverse("home")).content.decode()

    assert role_name(role) in page
    assert set(LINK_CARD.findall(page)) == expected_links(role)
    scanner_note = t("Scanning vouchers") in page
    assert scanner_note == (role in ("provider", "staff"))
    assert t("Your account has no role yet") not in page


def test_home_tells_a_user_without_a_role_what_to_do(client, db):
    client.force_login(make_user("newcomer"))

    page = client.get(reverse("home")).content.decode()

    assert t("Your account has no role yet") in page
    assert LINK_CARD.findall(page) == []


def test_a_superuser_sees_every_page(admin_client):
    page = admin_client.get(reverse("home")).content.decode()

    everything = set().union(*(expected_links(role) for role in ROLE_NAMES)) | {"/admin/"}
    assert set(LINK_CARD.findall(page)) == everything
    assert t("Scanning vouchers") in page


@pytest.mark.parametrize("role", list(ROLE_NAMES))
def test_home_links_lead_to_pages_the_role_may_open(client, role_users, role):
    if role in ("provider", "staff"):  # they work for a provider: a manager's links lead to its pages
        StaffMember.objects.create(user=role_users[role], provider=ProviderFactory(), employee_number="E1")
    client.force_login(role_users[role])
    page = client.get(reverse("home")).content.decode()

    for url in LINK_CARD.findall(page):
        assert client.get(url, follow=True).status_code == 200, url


# --- The senior's voucher page ---


def test_the_voucher_page_shows_balance_and_services_but_never_the_id_number(client, senior_voucher):
    # When the senior's family scans the paper voucher's QR code
    response = client.get(senior_voucher.url())

    # Then they see the masked name, the balance and this month's services that count
    page = response.content.decode()
    assert response.status_code == 200
    assert "李*国" in page
    assert '<p class="figure" id="balance" aria-labelledby="balance-label">¥144.00</p>' in page
    assert "¥200.00" in page  # face value
    assert "低偿" in page  # the tier
    assert "助洁" in page and "康乐家政" in page
    assert "¥80.00" in page and "¥56.00" in page and "¥24.00" in page  # amount, government, senior
    assert "助餐" not in page  # the voided meal does not count
    # And nothing that identifies the person
    senior = senior_voucher.senior
    assert "李建国" not in page
    assert senior.id_card_number not in page and senior.masked_id_card_number not in page
    # And the page is neither cached nor indexed
    assert response["Cache-Control"] == "no-store"
    assert response["X-Robots-Tag"] == "noindex"
    assert_local_assets_only(response)


def test_the_voucher_page_speaks_english_with_english_names(client, senior_voucher):
    page = client.get(senior_voucher.url(), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<html lang="en">' in page
    assert "Cleaning" in page and "Kangle Home Services" in page and "Low fee" in page
    assert t("Remaining balance", "en") in page


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ({"status": Voucher.Status.EXPIRED}, "This voucher has expired"),
        (
            {"valid_until": dt.date(2000, 1, 31), "valid_from": dt.date(2000, 1, 1)},
            "This voucher has expired",
        ),
        (
            {"valid_from": dt.date(2999, 1, 1), "valid_until": dt.date(2999, 1, 31)},
            "This voucher cannot be used yet",
        ),
    ],
)
def test_the_voucher_page_says_when_a_voucher_cannot_be_used(client, senior_voucher, change, shown):
    Voucher.objects.filter(pk=senior_voucher.voucher.pk).update(**change)

    page = client.get(senior_voucher.url()).content.decode()

    # the reason is the heading, and a voucher that cannot pay shows no balance
    assert t(shown) in page and "status-active" not in page
    assert 'id="balance"' not in page and "¥144.00" not in page


@pytest.mark.parametrize(
    "bad_token",
    ["not-a-token", "tampered", "unknown-voucher"],
)
def test_a_forged_code_gets_a_plain_not_valid_page(client, senior_voucher, bad_token):
    token = {
        "not-a-token": "not-a-token",
        # The same voucher and version with one character of the signature changed
        "tampered": senior_voucher.token[:-1] + ("A" if senior_voucher.token[-1] != "A" else "B"),
        # A genuine signature over a voucher that does not exist
        "unknown-voucher": make_token(
            voucher_id=senior_voucher.voucher.pk + 1000, version=1, period=senior_voucher.voucher.period
        ),
    }[bad_token]

    response = client.get(reverse("senior-voucher", kwargs={"token": token}))

    page = response.content.decode()
    assert response.status_code == 404
    assert t("This code is not valid") in page
    assert "李*国" not in page and "¥" not in page
    assert response["Cache-Control"] == "no-store"


def test_a_replaced_code_tells_the_senior_to_ask_for_the_new_one(client, senior_voucher):
    # Given the paper voucher was reported lost and its codes revoked (token version bumped)
    Voucher.objects.filter(pk=senior_voucher.voucher.pk).update(token_version=F("token_version") + 1)

    # When the old code is scanned
    response = client.get(senior_voucher.url())

    # Then the page says the code was replaced, and shows nothing of the voucher
    page = response.content.decode()
    assert response.status_code == 410
    assert t("This code has been replaced") in page
    assert "李*国" not in page and "¥" not in page
    # While the new code works
    new_token = make_token(
        voucher_id=senior_voucher.voucher.pk, version=2, period=senior_voucher.voucher.period
    )
    assert client.get(reverse("senior-voucher", kwargs={"token": new_token})).status_code == 200


def test_the_voucher_page_reads_the_database_three_times(client, senior_voucher, django_assert_num_queries):
    # the voucher with its senior and tier; its services with their disputes; the providers' hotlines
    with django_assert_num_queries(3):
        assert client.get(senior_voucher.url()).status_code == 200


# --- Errors, API docs and assets ---


@pytest.mark.parametrize("path", ["/api/anything-unknown", "/api/v1/no-such-thing/"])
def test_unknown_api_paths_answer_json(client, db, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


def test_an_unknown_page_is_a_friendly_html_page(client, db):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert t("Page not found") in response.content.decode()
    assert f'href="{reverse("home")}"' in response.content.decode()
    assert_local_assets_only(response)


def test_the_server_error_page_renders_without_a_database_or_session():
    response = views.server_error(RequestFactory().get("/somewhere/"))

    assert response.status_code == 500
    page = response.content.decode()
    assert t("Something went wrong") in page
    assert "<form" not in page  # no language or sign-out form: they need the request


def test_a_server_error_under_api_is_json():
    response = views.server_error(RequestFactory().get("/api/v1/redemptions/"))

    assert response.status_code == 500
    assert json.loads(response.content)["code"] == "server_error"


@pytest.mark.parametrize("name", ["api-docs"])
def test_api_docs_load_everything_from_this_server(client, db, name):
    response = client.get(reverse(name))

    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert_local_assets_only(response)


def test_the_api_schema_loads(client, db):
    response = client.get(reverse("schema"))

    assert response.status_code == 200
    assert b"/api/v1/redemptions/" in response.content


def assert_ready_for_a_strict_csp(response):
    """Nothing inline for a Content-Security-Policy to refuse: no script, no style attribute."""
    html = response.content.decode()
    assert "<script" not in html and "<style" not in html
    assert not re.search(r"\s(?:style|on[a-z]+)\s*=", html)


def test_pages_of_every_role_use_local_assets_only_and_nothing_inline(client, role_users, senior_voucher):
    for user in role_users.values():
        client.force_login(user)
        response = client.get(reverse("home"))
        assert_local_assets_only(response)
        assert_ready_for_a_strict_csp(response)
    client.logout()
    for path in (reverse("login"), senior_voucher.url(), "/v/forged/", "/no-such-page/"):
        response = client.get(path)
        assert_local_assets_only(response)
        assert_ready_for_a_strict_csp(response)


def test_the_stylesheet_loads_nothing_from_elsewhere(client, db):
    response = client.get("/static/css/app.css")

    css = b"".join(response.streaming_content).decode()
    assert response.status_code == 200
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(?:https?:)?//", css)


# --- Admin ---


def result_rows(page: str) -> str:
    """The rows of an admin list, without the headers and links that echo the search."""
    start = page.index("<tbody>", page.index('<table id="result_list">'))
    return page[start : page.index("</tbody>", start)]


def admin_search(client, changelist: str, query: str):
    """Search an admin list as its search box does: POSTed (config.admin.PostedSearchMixin),
    then the list it redirects to."""
    posted = client.post(changelist, {"q": query, "_search": "1"})
    assert posted.status_code == 302 and "q=" not in posted["Location"]
    return client.get(posted["Location"])


def test_every_admin_page_of_the_domain_opens(admin_client, senior_voucher):
    for model in admin.site._registry:
        if model._meta.app_label not in ("eligibility", "providers", "vouchers"):
            continue
        info = (model._meta.app_label, model._meta.model_name)
        changelist = reverse("admin:{}_{}_changelist".format(*info))
        assert admin_client.get(changelist).status_code == 200, info
        assert admin_search(admin_client, changelist, "not a number").status_code == 200, info
        instance = model.objects.first()
        if instance is not None:
            change = reverse("admin:{}_{}_change".format(*info), args=[instance.pk])
            assert admin_client.get(change).status_code == 200, info


def test_the_admin_never_shows_an_id_card_number_nor_searches_by_one(admin_client, senior_voucher):
    senior = senior_voucher.senior
    changelist = reverse("admin:eligibility_senior_changelist")

    listed = admin_client.get(changelist).content.decode()
    by_name = admin_search(admin_client, changelist, "李建").content.decode()
    by_number = admin_search(admin_client, changelist, senior.id_card_number).content.decode()
    detail = admin_client.get(reverse("admin:eligibility_senior_change", args=[senior.pk])).content.decode()

    # The rows show the number masked only; the admin's search (POSTed, never in a URL) finds by
    # name, never by number: that search is the registry's.
    assert senior.masked_id_card_number in listed and senior.id_card_number not in listed
    assert senior.masked_id_card_number in result_rows(by_name)
    assert senior.masked_id_card_number not in by_number  # nobody found
    assert senior.id_card_number not in detail and senior.masked_id_card_number in detail
    vouchers = admin_search(admin_client, reverse("admin:vouchers_voucher_changelist"), "李建")
    rows = result_rows(vouchers.content.decode())
    assert "李*国" in rows and senior.id_card_number not in rows


def test_registering_a_senior_in_the_admin_goes_through_the_registry(admin_client, admin_user, db):
    community = make_community("A")
    number = make_id_card_number(birth_date=dt.date(1946, 8, 15), serial=77)
    wrong_check_digit = number[:-1] + ("1" if number[-1] == "0" else "0")
    add = reverse("admin:eligibility_senior_add")
    form = {
        "name": "周桂芳",
        "community": community.pk,
        "self_care": "independent",
        "living_arrangement": "with_family",
        "children_in_city": "on",
    }

    # When the number's check digit is wrong, the form says so and nobody is registered
    refused = admin_client.post(add, {**form, "id_card_number": wrong_check_digit})
    assert refused.status_code == 200 and not Senior.objects.filter(name="周桂芳").exists()
    assert "errorlist" in refused.content.decode()

    # And with a valid number (typed in lower case), the senior is registered by the service
    created = admin_client.post(add, {**form, "id_card_number": number.lower()})
    assert created.status_code == 302
    senior = Senior.objects.get(name="周桂芳")
    assert senior.id_card_number == number.upper()
    assert (senior.birth_date, senior.created_by) == (dt.date(1946, 8, 15), admin_user)
    assert senior.history.get().history_user == admin_user


def test_a_superuser_repairs_facts_in_the_admin_through_the_service(admin_client, admin_user, senior_voucher):
    # Given 李建国 (low fee: empty-nest and dependent)
    senior = senior_voucher.senior
    change = reverse("admin:eligibility_senior_change", args=[senior.pk])
    form = {
        "name": senior.name,
        "community": senior.community_id,
        "self_care": "disabled",
        "living_arrangement": "empty_nest",
        "three_no": "on",  # new: 三无
    }

    # When a superuser records the new fact and re-evaluates him
    saved = admin_client.post(change, form)
    admin_client.post(
        reverse("admin:eligibility_senior_changelist"),
        {"action": "reevaluate", "_selected_action": [senior.pk]},
    )

    # Then the record keeps its ID number, the history says who changed what, and he is subsidized
    assert saved.status_code == 302
    senior.refresh_from_db()
    assert senior.three_no and senior.id_card_number == senior_voucher.senior.id_card_number
    latest = senior.history.latest()
    assert latest.history_user == admin_user
    assert {change.field for change in latest.diff_against(latest.prev_record).changes} == {"three_no"}
    current = senior.determinations.get(is_current=True)
    assert (current.tier.code, current.determined_by) == ("subsidized", admin_user)


def test_the_redemption_ledger_cannot_be_changed_in_the_admin(admin_client, senior_voucher):
    redemption = Redemption.objects.filter(voucher=senior_voucher.voucher).first()
    change = reverse("admin:vouchers_redemption_change", args=[redemption.pk])

    viewed = admin_client.get(change)
    changed = admin_client.post(change, {"quantity": "9"})
    deleted = admin_client.post(
        reverse("admin:vouchers_redemption_delete", args=[redemption.pk]), {"post": "yes"}
    )
    added = admin_client.get(reverse("admin:vouchers_redemption_add"))
    bulk = admin_client.post(
        reverse("admin:vouchers_redemption_changelist"),
        {"action": "delete_selected", "_selected_action": [redemption.pk], "post": "yes"},
    )

    assert viewed.status_code == 200 and 'name="_save"' not in viewed.content.decode()
    assert (changed.status_code, deleted.status_code, added.status_code) == (403, 403, 403)
    assert bulk.status_code == 200  # no such action: the list is shown again
    assert Redemption.objects.get(pk=redemption.pk).quantity == redemption.quantity


def test_the_ledger_filters_by_month_tier_and_void(admin_client, senior_voucher):
    month = senior_voucher.voucher.period.strftime("%Y-%m")
    changelist = reverse("admin:vouchers_redemption_changelist")

    def ids(**filters) -> set[str]:
        page = admin_client.get(changelist, filters).content.decode()
        return set(re.findall(r'href="/admin/vouchers/redemption/(\d+)/change/"', page))

    ledger = Redemption.objects.filter(voucher=senior_voucher.voucher)
    counted = {str(pk) for pk in ledger.filter(void__isnull=True).values_list("pk", flat=True)}
    voided = {str(pk) for pk in ledger.filter(void__isnull=False).values_list("pk", flat=True)}
    assert len(counted) == len(voided) == 1
    assert ids(month=month, tier="low_fee") == counted | voided
    assert ids(month=month, voided="no") == counted
    assert ids(voided="yes") == voided
    assert ids(tier="subsidized") == set()
    assert ids(month="2000-01") == set()


def test_device_tokens_are_never_shown_in_the_admin(admin_client, senior_voucher):
    device, raw_token = register_device(user=StaffMember.objects.first().user, name="phone")

    page = admin_client.get(reverse("admin:providers_device_change", args=[device.pk])).content.decode()

    assert device.token_prefix in page
    assert raw_token not in page and device.token_hash not in page


def test_sign_in_locks_a_username_after_ten_wrong_passwords(client, db):
    from django.contrib.auth import get_user_model

    username = f"clerk-{uuid.uuid4().hex[:8]}"
    get_user_model().objects.create_user(username=username, password="right-password-1")
    for _ in range(10):
        response = client.post(reverse("login"), {"username": username, "password": "wrong"})
        assert response.status_code == 200
    # even the right password is refused while the username is locked
    response = client.post(reverse("login"), {"username": username, "password": "right-password-1"})
    assert response.status_code == 200
    assert "15" in response.content.decode()
    assert "_auth_user_id" not in client.session
