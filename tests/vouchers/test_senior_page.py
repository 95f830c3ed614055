"""The senior's own page (/v/<token>/, no sign-in) and "this service did not happen" (disputes).

Given the world of tests/vouchers/conftest.py (16 November 2026): 李建国's low-fee voucher
(¥200, 70 % from the government) with 2 hours of cleaning (¥80: ¥56 from the voucher, ¥24 paid
by him) and a meal that was voided.
"""

import datetime as dt
import html
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import DataError, IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from config.errors import DomainError
from eligibility.models import Senior
from tests.e2e.conftest import make_user
from tests.vouchers.conftest import NOW, build_world
from vouchers import services
from vouchers.models import Dispute, Redemption, Voucher
from vouchers.services import dispute_client_hash, file_dispute, redeem, reissue_voucher, void_redemption
from vouchers.tokens import voucher_token

WORKER_PHONE, HOTLINE = "0571-87991001", "0571-88152468"
SENIOR_PHONE, SENIOR_ADDRESS = "13857101234", "北山街道保俶路12号3单元"


def t(text: str, language: str = "zh-hans", **params) -> str:
    """`text` as a page in `language` shows it (pages are read unescaped: `read`)."""
    with translation.override(language):
        return gettext(text) % params if params else gettext(text)


def read(response) -> str:
    """The page's text with its HTML entities resolved (an apostrophe may come either way)."""
    return html.unescape(response.content.decode())


@dataclass
class Served:
    voucher: Voucher
    token: str
    cleaning: Redemption
    meal: Redemption  # voided

    def url(self) -> str:
        return reverse("senior-voucher", kwargs={"token": self.token})

    def dispute_url(self) -> str:
        return reverse("senior-dispute", kwargs={"token": self.token})


def serve(world, tier="low_fee", item="cleaning", quantity="2") -> Redemption:
    return redeem(
        token=world.token(tier),
        service_item_code=item,
        quantity=Decimal(quantity),
        idempotency_key=uuid.uuid4().hex,
        staff=world.staff,
    ).redemption


def set_up_contacts(world) -> None:
    community = world.community
    community.contact_name, community.contact_phone = "陈晓燕", WORKER_PHONE
    community.save()
    provider = world.contract.provider
    provider.contact_phone = HOTLINE
    provider.save()


@pytest.fixture
def served(world) -> Served:
    set_up_contacts(world)
    Senior.objects.filter(pk=world.vouchers["low_fee"].senior_id).update(
        phone=SENIOR_PHONE, address=SENIOR_ADDRESS
    )
    cleaning = serve(world)
    meal = serve(world, item="meal", quantity="1")
    void_redemption(redemption_id=meal.pk, reason="送错了", user=world.staff.user)
    voucher = Voucher.objects.get(pk=world.vouchers["low_fee"].pk)
    return Served(voucher=voucher, token=voucher_token(voucher), cleaning=cleaning, meal=meal)


def fresh_address() -> str:
    """A client address of this test alone: the throttle's counts in a shared cache (Redis
    keeps them an hour) never meet another test's or another run's."""
    number = uuid.uuid4().int
    return f"10.{number % 250}.{number // 250 % 250}.{number // 62500 % 250 + 1}"


@pytest.fixture
def address() -> str:
    return fresh_address()


@pytest.fixture
def browser_client(address) -> Client:
    return Client(REMOTE_ADDR=address)


def dispute(served, address, **fields) -> services.DisputeResult:
    return file_dispute(
        token=served.token,
        redemption_id=fields.pop("redemption_id", served.cleaning.pk),
        client_address=address,
        **fields,
    )


def refusal(work) -> DomainError:
    with pytest.raises(DomainError) as caught:
        work()
    return caught.value


# --- The page's states -------------------------------------------------------------------------


def test_an_active_voucher_shows_its_balance_large_with_the_services_and_whom_to_call(client, served, world):
    response = client.get(served.url())

    page = read(response)
    assert response.status_code == 200
    assert "李*国" in page
    assert '<p class="figure" id="balance" aria-labelledby="balance-label">¥144.00</p>' in page
    assert "senior-page.css" in page
    # the services that count, with what he paid, each with its button
    assert "助洁" in page and "¥80.00" in page and "¥56.00" in page and "¥24.00" in page
    assert t("This service did not happen") in page
    assert f'name="service" value="{served.cleaning.pk}"' in page
    # whom to call: the community's worker and the provider's hotline, as tel: links
    assert "陈晓燕" in page and 'href="tel:057187991001"' in page
    assert world.contract.provider.name in page and 'href="tel:057188152468"' in page
    assert '<span class="phone-group">0571</span> <span class="phone-group">8799</span>' in page
    # neither cached nor indexed
    assert response["Cache-Control"] == "no-store"
    assert response["X-Robots-Tag"] == "noindex"


EXPIRED = (
    "This voucher has expired",
    "Please use this month's voucher. If you have not received it, call your community worker.",
    {},
)
NOT_YET = ("This voucher cannot be used yet", "You can use it from %(start)s.", {"start": "2026年12月1日"})


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"status": Voucher.Status.EXPIRED}, EXPIRED),
        ({"valid_from": dt.date(2026, 10, 1), "valid_until": dt.date(2026, 10, 31)}, EXPIRED),
        ({"valid_from": dt.date(2026, 12, 1), "valid_until": dt.date(2026, 12, 31)}, NOT_YET),
    ],
)
def test_a_voucher_that_cannot_pay_says_so_first_and_shows_no_balance(client, served, change, words):
    heading, what_to_do, params = words
    Voucher.objects.filter(pk=served.voucher.pk).update(**change)

    response = client.get(served.url())

    page = read(response)
    assert response.status_code == 200
    # the reason is the page's one heading, before the name and any amount, with what to do
    (h1,) = re.findall(r"<h1[^>]*>(.*?)</h1>", page)
    assert h1 == t(heading)
    before = page.split(t(heading))[0]
    assert "李*国" not in before and "¥" not in before
    assert t(what_to_do, **params) in page
    # and no balance: nothing that could be read as money to spend now
    assert 'id="balance"' not in page and "¥144.00" not in page
    assert t("Remaining balance") not in page and "status-active" not in page
    # whom to call comes right after the reason
    assert "陈晓燕" in page and 'href="tel:057187991001"' in page


def test_a_voucher_not_yet_valid_says_from_when_and_how_much_in_words(client, served):
    Voucher.objects.filter(pk=served.voucher.pk).update(
        valid_from=dt.date(2026, 12, 1), valid_until=dt.date(2026, 12, 31)
    )

    page = read(client.get(served.url()))

    assert t("You can use it from %(start)s.", start="2026年12月1日") in page
    assert t("From then on it pays up to ¥%(amount)s for your services that month.", amount="200.00") in page
    # its services are not listed (it has none that month)
    assert t("This service did not happen") not in page


def test_an_expired_vouchers_services_can_still_be_disputed(client, served):
    Voucher.objects.filter(pk=served.voucher.pk).update(status=Voucher.Status.EXPIRED)

    page = read(client.get(served.url()))

    assert t("Services in %(month)s", month="2026年11月") in page
    assert f'name="service" value="{served.cleaning.pk}"' in page
    assert dispute(served, fresh_address()).created


def test_a_replaced_code_says_so_with_whom_to_call_and_nothing_of_the_voucher(client, served):
    # Given the card was reported lost and a new one issued
    reissue_voucher(voucher_id=served.voucher.pk, reason="丢失")

    # When the old card's code is opened
    response = client.get(served.url())

    page = read(response)
    assert response.status_code == 410
    assert t("This code has been replaced") in page
    assert "李*国" not in page and "¥" not in page and "助洁" not in page
    assert 'href="tel:057187991001"' in page  # as printed on the card
    assert response["Cache-Control"] == "no-store"
    # while the new card's code opens the voucher
    new = Voucher.objects.get(pk=served.voucher.pk)
    assert client.get(reverse("senior-voucher", kwargs={"token": voucher_token(new)})).status_code == 200


def test_a_revoked_voucher_says_it_is_stopped(client, served):
    Voucher.objects.filter(pk=served.voucher.pk).update(status=Voucher.Status.REVOKED)

    response = client.get(served.url())

    page = read(response)
    assert response.status_code == 410
    assert t("This voucher has been stopped") in page
    assert "李*国" not in page and "¥" not in page


@pytest.mark.parametrize("token", ["forged", "x" * 200])
def test_a_forged_code_gets_the_plain_not_valid_page(client, served, token):
    response = client.get(reverse("senior-voucher", kwargs={"token": token}))

    page = read(response)
    assert response.status_code == 404
    assert t("This code is not valid") in page
    assert "李*国" not in page and "¥" not in page and "tel:" not in page
    assert response["X-Robots-Tag"] == "noindex"


@pytest.mark.parametrize("state", ["active", "expired", "replaced"])
def test_nothing_identifies_the_senior_beyond_the_masked_name(client, served, state):
    if state == "expired":
        Voucher.objects.filter(pk=served.voucher.pk).update(status=Voucher.Status.EXPIRED)
    elif state == "replaced":
        reissue_voucher(voucher_id=served.voucher.pk, reason="丢失")
    senior = Senior.objects.get(pk=served.voucher.senior_id)

    page = read(client.get(served.url()))

    for personal in (
        senior.name,
        senior.id_card_number,
        senior.masked_id_card_number,
        SENIOR_PHONE,
        SENIOR_PHONE[:3] + " " + SENIOR_PHONE[3:7],
        SENIOR_ADDRESS,
        senior.birth_date.isoformat(),
    ):
        assert personal not in page, personal


def test_the_page_speaks_english(client, served):
    Voucher.objects.filter(pk=served.voucher.pk).update(status=Voucher.Status.EXPIRED)

    page = read(client.get(served.url(), HTTP_ACCEPT_LANGUAGE="en"))

    assert '<html lang="en">' in page
    assert "This voucher has expired" in page and "This service did not happen" in page
    assert "Questions? Call" in page and "Community worker" in page


def test_the_page_reads_the_database_three_times(client, served, django_assert_num_queries):
    # the voucher with its senior, community and tier; the services with their disputes; the hotlines
    with django_assert_num_queries(3):
        assert client.get(served.url()).status_code == 200


# --- Disputes: "this service did not happen" --------------------------------------------------


def test_the_button_asks_to_confirm_before_anything_is_recorded(browser_client, served):
    response = browser_client.post(served.dispute_url(), {"service": served.cleaning.pk})

    page = read(response)
    assert response.status_code == 200
    assert t("Did this service not happen?") in page
    assert "助洁" in page and "¥24.00" in page
    assert 'name="confirm"' in page and 'name="note"' in page and 'name="callback_phone"' in page
    assert response["Cache-Control"] == "no-store"
    assert not Dispute.objects.exists()


def test_a_confirmed_dispute_is_recorded_with_its_fields(browser_client, served, address):
    response = browser_client.post(
        served.dispute_url(),
        {
            "service": served.cleaning.pk,
            "confirm": "1",
            "note": "  那天没有人来。\r\n我一直在家。 ",
            "callback_phone": "139 1234 5678",
        },
    )

    page = read(response)
    assert response.status_code == 200
    assert t("Recorded") in page
    assert (
        t("We have recorded that this service did not happen. The civil-affairs bureau will check it.")
        in page
    )
    assert response["Cache-Control"] == "no-store"
    (recorded,) = Dispute.objects.all()
    assert recorded.redemption_id == served.cleaning.pk
    assert recorded.note == "那天没有人来。\n我一直在家。"
    assert recorded.callback_phone == "13912345678"
    assert recorded.status == Dispute.Status.OPEN
    assert recorded.created_at == NOW
    # the client's address is kept only as a keyed hash
    assert recorded.client_hash == dispute_client_hash(address) and len(recorded.client_hash) == 64
    assert address not in recorded.client_hash
    # and the page now says it was reported, with no button for that service
    page = read(browser_client.get(served.url()))
    assert t("You reported that this service did not happen. The civil-affairs bureau will check.") in page
    assert f'name="service" value="{served.cleaning.pk}"' not in page


def test_note_and_phone_are_optional(served, address):
    result = dispute(served, address)

    assert result.created
    assert (result.dispute.note, result.dispute.callback_phone) == ("", "")


def test_a_repeated_dispute_is_already_recorded_not_a_second_row(browser_client, served):
    posted = {"service": served.cleaning.pk, "confirm": "1", "note": "没有来"}
    browser_client.post(served.dispute_url(), posted)

    # When the same service is reported again (a reload, a second tap, another phone)
    again = browser_client.post(served.dispute_url(), posted)
    from_the_button = browser_client.post(served.dispute_url(), {"service": served.cleaning.pk})
    other_phone = file_dispute(
        token=served.token, redemption_id=served.cleaning.pk, client_address=fresh_address()
    )

    # Then it says so, and there is one row
    assert again.status_code == 200 and t("Already recorded") in read(again)
    assert t("Already recorded") in read(from_the_button)
    assert not other_phone.created
    assert Dispute.objects.count() == 1


def test_once_the_bureau_has_closed_a_dispute_the_service_can_be_reported_again(served, address):
    first = dispute(served, address).dispute
    Dispute.objects.filter(pk=first.pk).update(status=Dispute.Status.CLOSED)

    second = dispute(served, address)

    assert second.created and Dispute.objects.filter(redemption=served.cleaning).count() == 2


def test_a_voided_service_has_no_button_and_cannot_be_disputed(browser_client, served, address):
    page = read(browser_client.get(served.url()))
    assert f'name="service" value="{served.meal.pk}"' not in page and "助餐" not in page

    response = browser_client.post(served.dispute_url(), {"service": served.meal.pk, "confirm": "1"})
    assert response.status_code == 404
    assert t("This service is not on this voucher.") in read(response)

    error = refusal(lambda: dispute(served, address, redemption_id=served.meal.pk))
    assert error.code == "already_voided"
    assert not Dispute.objects.exists()


@pytest.mark.parametrize("redemption_id", ["other voucher", "no such", "not a number", "huge", "none"])
def test_a_service_not_on_this_voucher_is_not_found(browser_client, served, world, address, redemption_id):
    other = serve(world, tier="subsidized", quantity="1")
    value = {
        "other voucher": other.pk,
        "no such": other.pk + 1000,
        "not a number": "1 OR 1=1",
        "huge": "9" * 30,
        "none": None,
    }[redemption_id]

    error = refusal(lambda: dispute(served, address, redemption_id=value))
    posted = {"confirm": "1"} | ({"service": value} if value is not None else {})
    response = browser_client.post(served.dispute_url(), posted)

    assert error.code == "not_found"
    assert response.status_code == 404
    assert not Dispute.objects.exists()


def test_a_forged_or_replaced_code_files_nothing(browser_client, served, address):
    forged = refusal(
        lambda: file_dispute(token="forged", redemption_id=served.cleaning.pk, client_address=address)
    )
    assert forged.code == "invalid_token"
    assert (
        browser_client.post(
            reverse("senior-dispute", kwargs={"token": "forged"}),
            {"service": served.cleaning.pk, "confirm": "1"},
        ).status_code
        == 404
    )

    reissue_voucher(voucher_id=served.voucher.pk, reason="丢失")
    replaced = refusal(lambda: dispute(served, address))
    assert replaced.code == "voucher_revoked"
    response = browser_client.post(served.dispute_url(), {"service": served.cleaning.pk, "confirm": "1"})
    assert response.status_code == 410 and t("This code has been replaced") in read(response)
    assert not Dispute.objects.exists()


def test_a_bad_phone_or_a_long_note_comes_back_with_what_was_typed(browser_client, served, address):
    bad_phone = browser_client.post(
        served.dispute_url(),
        {"service": served.cleaning.pk, "confirm": "1", "note": "没人来", "callback_phone": "12345"},
    )
    long_note = refusal(lambda: dispute(served, address, note="没" * 501))

    page = read(bad_phone)
    assert bad_phone.status_code == 400
    assert "没人来" in page and 'value="12345"' in page and 'aria-invalid="true"' in page
    assert long_note.code == "invalid_input" and long_note.field == "note"
    assert refusal(lambda: dispute(served, address, callback_phone="12345")).field == "callback_phone"
    assert not Dispute.objects.exists()
    # exactly 500 characters is fine, and a landline is kept in the registry's form
    assert dispute(
        served, address, note="没" * 500, callback_phone="0571 87001234"
    ).dispute.callback_phone == ("0571-87001234")


def test_at_most_n_disputes_a_day_on_one_voucher(world, served, monkeypatch):
    monkeypatch.setattr(services, "DISPUTES_PER_VOUCHER_PER_DAY", 2)
    more = [serve(world, quantity="1") for _ in range(2)]
    dispute(served, fresh_address())
    dispute(served, fresh_address(), redemption_id=more[0].pk)

    # a third on the same day is refused, from whichever client
    error = refusal(lambda: dispute(served, fresh_address(), redemption_id=more[1].pk))
    assert error.code == "rate_limited"
    # the next day it is taken
    tomorrow = NOW + dt.timedelta(days=1)
    assert file_dispute(
        token=served.token, redemption_id=more[1].pk, client_address=fresh_address(), now=tomorrow
    ).created


def test_at_most_n_disputes_an_hour_from_one_client(world, served, address, monkeypatch):
    monkeypatch.setattr(services, "DISPUTES_PER_CLIENT_PER_HOUR", 2)
    more = [serve(world, quantity="1") for _ in range(3)]
    dispute(served, address)
    dispute(served, address, redemption_id=more[0].pk)

    error = refusal(lambda: dispute(served, address, redemption_id=more[1].pk))

    assert error.code == "rate_limited"
    # another client is not held back, nor this one an hour later
    assert dispute(served, fresh_address(), redemption_id=more[1].pk).created
    later = NOW + dt.timedelta(hours=1, seconds=1)
    assert file_dispute(
        token=served.token, redemption_id=more[2].pk, client_address=address, now=later
    ).created


def test_an_ipv6_client_is_its_64_network():
    assert dispute_client_hash("2001:db8:1:2::1") == dispute_client_hash("2001:db8:1:2:ffff::9")
    assert dispute_client_hash("2001:db8:1:2::1") != dispute_client_hash("2001:db8:1:3::1")
    assert dispute_client_hash("10.0.0.1") != dispute_client_hash("10.0.0.2")


def test_too_many_tries_from_one_client_are_refused_on_the_page(browser_client, served, address, monkeypatch):
    # Given a client guessing service numbers (refused tries count too)
    monkeypatch.setattr(services, "DISPUTE_ATTEMPTS_PER_CLIENT_PER_HOUR", 3)
    for guess in range(3):
        posted = {"service": served.cleaning.pk + 100 + guess, "confirm": "1"}
        assert browser_client.post(served.dispute_url(), posted).status_code == 404

    # When it then reports a real service
    response = browser_client.post(served.dispute_url(), {"service": served.cleaning.pk, "confirm": "1"})

    # Then it is told to call instead, with the numbers to call
    page = read(response)
    assert response.status_code == 429
    assert (
        t("Many services have been reported already. To report more, please call your community worker.")
        in page
    )
    assert 'href="tel:057187991001"' in page
    assert not Dispute.objects.exists()
    cache.delete(f"vouchers:dispute-attempts:{dispute_client_hash(address)}")


def test_with_the_cache_down_the_dispute_is_still_recorded(served, address, monkeypatch, caplog):
    # Given a cache that fails on every call, as Redis down does
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    for method in ("add", "incr", "set", "get"):
        monkeypatch.setattr(cache, method, broken)

    # When a dispute is filed
    result = dispute(served, address, note="没人来")

    # Then it is recorded, and the log says the throttle could not count
    assert result.created and Dispute.objects.count() == 1
    assert "dispute attempts goes on without it" in caplog.text


def test_the_dispute_form_needs_the_csrf_token(served, address):
    strict = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    posted = {"service": served.cleaning.pk, "confirm": "1"}

    # Without the page's token: refused, nothing written
    assert strict.post(served.dispute_url(), posted).status_code == 403
    assert not Dispute.objects.exists()

    # With the token of the page's form (and its cookie): recorded
    page = read(strict.get(served.url()))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = strict.post(served.dispute_url(), posted | {"csrfmiddlewaretoken": token})
    assert response.status_code == 200 and Dispute.objects.count() == 1


def test_the_dispute_url_takes_no_get(client, served):
    assert client.get(served.dispute_url()).status_code == 405


# --- The database's own rules -----------------------------------------------------------------


def test_the_database_keeps_one_open_dispute_per_service(served):
    Dispute.objects.create(redemption=served.cleaning, client_hash="a" * 64)

    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.create(redemption=served.cleaning, client_hash="b" * 64)
    Dispute.objects.create(redemption=served.cleaning, client_hash="c" * 64, status=Dispute.Status.CLOSED)

    assert Dispute.objects.filter(redemption=served.cleaning).count() == 2


def test_the_database_refuses_a_note_over_500_characters(served):
    # (PostgreSQL's varchar(500) refuses it before the check constraint, as a DataError)
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Dispute.objects.create(redemption=served.cleaning, client_hash="a" * 64, note="没" * 501)
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.create(redemption=served.cleaning, client_hash="a" * 64, status="maybe")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the phone's form is checked by PostgreSQL only"
)
def test_postgresql_refuses_a_callback_phone_of_another_form(served):
    with pytest.raises(IntegrityError), transaction.atomic():
        Dispute.objects.create(redemption=served.cleaning, client_hash="a" * 64, callback_phone="12345")


# --- What the bureau reads ---------------------------------------------------------------------


def test_the_bureau_reads_disputes_in_the_admin_and_nobody_changes_them(client, served, address):
    dispute(served, address, note="那天没有人来", callback_phone="13912345678")
    assert Group.objects.get(name="bureau").permissions.filter(codename="view_dispute").exists()
    bureau = make_user("wang", "bureau", is_staff=True)
    client.force_login(bureau)

    listing = client.get(reverse("admin:vouchers_dispute_changelist"))
    recorded = Dispute.objects.get()
    detail = client.get(reverse("admin:vouchers_dispute_change", args=[recorded.pk]))

    assert listing.status_code == 200 and detail.status_code == 200
    page = read(listing)
    assert "那天没有人来" in page and "李*国" in page and "李建国" not in page
    assert client.get(reverse("admin:vouchers_dispute_add")).status_code == 403
    assert client.post(reverse("admin:vouchers_dispute_delete", args=[recorded.pk])).status_code == 403
    assert Dispute.objects.count() == 1


def test_a_provider_manager_does_not_see_disputes_in_the_admin(client, served, address, world):
    dispute(served, address)
    provider = make_user("zhao", "provider", is_staff=True)
    client.force_login(provider)

    assert client.get(reverse("admin:vouchers_dispute_changelist")).status_code == 403


# --- Under real concurrency (PostgreSQL) ---------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and parallel writers need PostgreSQL"
)
def test_one_service_reported_from_ten_phones_at_once_is_one_dispute(transactional_db, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    world = build_world()
    cleaning = serve(world)
    token = world.token()
    barrier = threading.Barrier(10)

    def report(i):
        try:
            barrier.wait(timeout=10)
            return file_dispute(
                token=token, redemption_id=cleaning.pk, client_address=fresh_address()
            ).created
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=10) as pool:
        created = list(pool.map(report, range(10)))

    assert created.count(True) == 1
    assert Dispute.objects.filter(redemption=cleaning).count() == 1


def test_a_dispute_sent_without_its_security_cookie_gets_a_plain_page_and_records_nothing(world):
    from django.test import Client

    from tests.vouchers.conftest import scan_and_confirm
    from tests.vouchers.test_api import redeem_body
    from vouchers.models import Dispute

    served = scan_and_confirm(world.client(), redeem_body(world.token())).json()
    browser = Client(enforce_csrf_checks=True)
    # Everything a confirmed dispute sends, except the security token
    response = browser.post(f"/v/{world.token()}/dispute/", {"service": served["id"], "confirm": "1"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "请再试一次" in page and "CSRF" not in page
    assert not Dispute.objects.exists()


def test_a_balance_carried_over_from_last_month_is_shown_beside_the_face_value(world, client):
    from decimal import Decimal

    from vouchers.models import Voucher

    voucher = world.vouchers["low_fee"]
    Voucher.objects.filter(pk=voucher.pk).update(carried_over=Decimal("35.50"), balance=Decimal("235.50"))
    page = client.get(f"/v/{world.token()}/").content.decode()
    assert "¥35.50" in page and "¥235.50" in page
    assert "¥35.50" not in client.get(f"/v/{world.token('subsidized')}/").content.decode()
