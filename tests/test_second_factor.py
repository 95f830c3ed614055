"""A second factor (TOTP, django-otp) for finance, bureau and superusers: enrolled from a QR code
on the first sign-in, asked after the password every time, recovery codes for a lost phone, and
a working day's idle expiry (config.second_factor)."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.roles import BUREAU, FINANCE, WORKER
from tests.factories import UserFactory
from tests.second_factor import authenticator_of, current_code

PASSWORD = "pw-for-tests-1"


@pytest.fixture(autouse=True)
def no_slowdown(settings):
    """django-otp refuses every code for a growing time after a wrong one; these tests type the
    right one at once (test_wrong_codes_slow_down_guessing keeps the slowdown)."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


def user_in(role: str | None, username: str, **fields):
    user = UserFactory(username=username, **fields)
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def sign_in_with_password(user) -> tuple[Client, object]:
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD}, follow=True)
    return client, response


@pytest.mark.parametrize("role", [FINANCE, BUREAU, "superuser"])
def test_the_first_sign_in_enrols_an_authenticator_and_gives_recovery_codes(db, role):
    user = user_in(None if role == "superuser" else role, f"first-{role}", is_superuser=role == "superuser")

    # when the password is right, the next page is the enrolment, with a QR code and the key
    client, page = sign_in_with_password(user)
    assert page.redirect_chain[-1][0].startswith("/otp/setup/")
    html = page.content.decode()
    assert 'src="data:image/png;base64,' in html
    assert "身份验证器" in html  # in Chinese
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    assert "otpauth://totp/" in pending.config_url

    # a page of the role is out of reach until then
    assert client.get("/billing/").status_code == 302

    # a wrong code enrols nothing
    refused = client.post("/otp/setup/", {"code": "000000", "next": "/"})
    assert refused.status_code == 400
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()

    # the app's current code enrols it, and ten recovery codes are shown once
    enrolled = client.post("/otp/setup/", {"code": current_code(pending), "next": "/"}, follow=True)
    codes = re.findall(r"<li><code>([0-9a-z]+)</code></li>", enrolled.content.decode())
    assert len(codes) == 10
    assert client.get("/otp/recovery-codes/").status_code == 302  # not shown again
    assert client.get("/").status_code == 200


def test_each_later_sign_in_asks_for_the_apps_code_or_a_recovery_code(db):
    user = user_in(FINANCE, "fin")
    device = authenticator_of(user)

    # the password alone leads to the code page, and the role's pages stay closed
    client, page = sign_in_with_password(user)
    assert page.redirect_chain[-1][0].startswith("/otp/?")
    assert client.get("/billing/")["Location"].startswith("/otp/")
    api = client.get("/api/v1/redemptions/")
    assert (api.status_code, api.json()["code"]) == (403, "second_factor_required")

    # a wrong code is refused; the app's code opens them
    assert client.post("/otp/", {"code": "123456", "next": "/billing/"}).status_code == 400
    assert (
        client.post("/otp/", {"code": current_code(device), "next": "/billing/"})["Location"] == "/billing/"
    )
    assert client.get("/billing/").status_code == 200


def test_a_recovery_code_works_once(db):
    user = user_in(BUREAU, "bur")
    # enrol through the page to get the codes
    client, _ = sign_in_with_password(user)
    pending = TOTPDevice.objects.get(user=user, confirmed=False)
    enrolled = client.post("/otp/setup/", {"code": current_code(pending), "next": "/"}, follow=True)
    code = re.findall(r"<li><code>([0-9a-z]+)</code></li>", enrolled.content.decode())[0]

    first, _ = sign_in_with_password(user)
    assert first.post("/otp/", {"code": code, "next": "/"}).status_code == 302
    second, _ = sign_in_with_password(user)
    assert second.post("/otp/", {"code": code, "next": "/"}).status_code == 400


def test_a_stolen_password_cannot_enrol_a_second_authenticator(db):
    user = user_in(FINANCE, "fin")
    authenticator_of(user)
    client, _ = sign_in_with_password(user)

    assert client.get("/otp/setup/")["Location"].startswith("/otp/?")
    assert client.post("/otp/setup/", {"code": "000000"})["Location"].startswith("/otp/?")
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_other_roles_sign_in_with_their_password_alone(db):
    user = user_in(WORKER, "wkr")
    client, page = sign_in_with_password(user)
    assert page.redirect_chain == [("/", 302)]
    assert client.get("/").status_code == 200


def test_sessions_of_those_roles_end_after_a_working_day_idle(db, settings):
    finance = user_in(FINANCE, "fin")
    authenticator_of(finance)
    worker = user_in(WORKER, "wkr")

    fin_client, _ = sign_in_with_password(finance)
    wkr_client, _ = sign_in_with_password(worker)

    assert fin_client.session.get_expiry_age() == 8 * 3600
    assert wkr_client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_the_demo_logins_skip_it_only_with_debug_on(db, settings):
    user = user_in(FINANCE, "finance")
    settings.SECOND_FACTOR_SKIP_USERNAMES = ["bureau", "finance", "finance2"]

    settings.DEBUG = True
    _, page = sign_in_with_password(user)
    assert page.redirect_chain == [("/", 302)]

    settings.DEBUG = False
    _, page = sign_in_with_password(user)
    assert page.redirect_chain[-1][0].startswith("/otp/")


def test_without_debug_no_login_is_skipped(monkeypatch):
    import importlib

    import config.settings as production

    monkeypatch.setenv("DEBUG", "0")
    assert importlib.reload(production).SECOND_FACTOR_SKIP_USERNAMES == []
    monkeypatch.setenv("DEBUG", "1")
    assert importlib.reload(production).SECOND_FACTOR_SKIP_USERNAMES == ["bureau", "finance", "finance2"]


def test_wrong_codes_slow_down_guessing(db, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 1
    user = user_in(FINANCE, "fin")
    device = authenticator_of(user)
    client, _ = sign_in_with_password(user)

    # right after a wrong code even the right one is refused: a million codes take far too long
    assert client.post("/otp/", {"code": "000000"}).status_code == 400
    assert client.post("/otp/", {"code": current_code(device)}).status_code == 400
    device.refresh_from_db()
    assert device.throttling_failure_count >= 1
