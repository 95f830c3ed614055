"""Fixtures shared by every test folder. Folder-specific worlds live in each folder's conftest."""

import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from config import resilience


@pytest.fixture(autouse=True)
def own_cache_keys(monkeypatch):
    """Each test counts its own rate limits: the cache (Redis, shared by the whole run, or the
    process's memory) sees this test's keys only, while ids of users repeat from test to test."""
    monkeypatch.setattr(cache, "key_prefix", f"test-{uuid.uuid4().hex[:12]}")
    resilience.reset()  # a cache failure of an earlier test is not this one's


@pytest.fixture
def api_client() -> APIClient:
    """An unauthenticated API client; tests add credentials themselves."""
    return APIClient()


@pytest.fixture(autouse=True)
def force_login_gives_the_second_factor(monkeypatch):
    """`client.force_login(user)` signs a finance, bureau or superuser account in with its second
    factor too, as the sign-in page and the code page do together; tests of the second factor
    itself sign in with `client.login` or the page."""
    from tests.second_factor import verify_session

    original = Client.force_login

    def force_login(self, user, backend=None):
        original(self, user, backend)
        verify_session(self, user)

    monkeypatch.setattr(Client, "force_login", force_login)
