"""One lockout for the web sign-in and a device's sign-in, per username and per address
(config.signin, django-axes), and a device sign-in that is no password oracle."""

import uuid

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import StaffMemberFactory, UserFactory

PASSWORD = "pw-for-tests-1"
TOKEN = "/api/v1/auth/token/"
LIMIT = settings.AXES_FAILURE_LIMIT


def fresh_address() -> str:
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


def web_sign_in(username, password, address):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def device_sign_in(username, password, address):
    return APIClient(REMOTE_ADDR=address).post(
        TOKEN, {"username": username, "password": password}, format="json"
    )


def signed_in(response) -> bool:
    return response.status_code == 302


@pytest.fixture
def staff(db):
    return StaffMemberFactory()


def test_wrong_passwords_on_the_web_lock_the_username_for_the_device_sign_in_too(staff):
    username = staff.user.username
    # given LIMIT wrong passwords on the web form, each from another address
    for _ in range(LIMIT):
        assert not signed_in(web_sign_in(username, "guess", fresh_address()))

    # then the right password is refused on the web and on the device sign-in, from anywhere
    page = web_sign_in(username, PASSWORD, fresh_address())
    assert not signed_in(page)
    assert "分钟后再试" in page.content.decode()
    device = device_sign_in(username, PASSWORD, fresh_address())
    assert device.status_code == 429
    assert device.json()["code"] == "rate_limited"
    assert int(device["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()


def test_wrong_passwords_on_the_device_sign_in_lock_the_web_sign_in(staff):
    username = staff.user.username.upper()  # the lockout counts "STAFF" as "staff"
    answers = [device_sign_in(username, "guess", fresh_address()).status_code for _ in range(LIMIT)]
    assert answers == [401] * (LIMIT - 1) + [429]  # the failure that reaches the limit locks

    assert not signed_in(web_sign_in(staff.user.username, PASSWORD, fresh_address()))
    assert device_sign_in(staff.user.username, PASSWORD, fresh_address()).status_code == 429


def test_one_address_trying_many_usernames_is_locked_out(staff):
    address = fresh_address()
    for n in range(LIMIT):
        device_sign_in(f"nobody-{n}", "guess", address)

    # the staff member's right password from that address is refused; from another it works
    assert device_sign_in(staff.user.username, PASSWORD, address).status_code == 429
    assert not signed_in(web_sign_in(staff.user.username, PASSWORD, address))
    assert device_sign_in(staff.user.username, PASSWORD, fresh_address()).status_code == 201


def test_a_right_password_before_the_limit_starts_the_count_again(staff):
    username = staff.user.username
    for _ in range(LIMIT - 1):
        device_sign_in(username, "guess", fresh_address())
    assert device_sign_in(username, PASSWORD, fresh_address()).status_code == 201
    for _ in range(LIMIT - 1):
        device_sign_in(username, "guess", fresh_address())
    assert device_sign_in(username, PASSWORD, fresh_address()).status_code == 201


@pytest.mark.parametrize("who", ["superuser", "clerk", "unknown"])
def test_the_device_sign_in_answers_alike_whether_the_password_or_the_role_is_wrong(db, who):
    # given accounts that may not scan: a superuser and a user without a provider, with the right
    # password, and a username that does not exist
    if who == "superuser":
        UserFactory(username=who, is_superuser=True, is_staff=True)
    elif who == "clerk":
        UserFactory(username=who)
    wrong_password = device_sign_in(who, "not-the-password", fresh_address())
    right_password = device_sign_in(who, PASSWORD, fresh_address())

    # then both answers are the same refusal: nothing tells the password was right
    assert wrong_password.status_code == right_password.status_code == 401
    assert wrong_password.json() == right_password.json()
    assert right_password.json()["code"] == "not_authenticated"


def test_a_non_staff_account_with_its_right_password_counts_towards_the_lockout(db):
    UserFactory(username="clerk")
    for _ in range(LIMIT):
        device_sign_in("clerk", PASSWORD, fresh_address())
    # the lockout holds for the web sign-in too, where the clerk could otherwise sign in
    assert not signed_in(web_sign_in("clerk", PASSWORD, fresh_address()))
