"""Fixtures shared by every test folder. Folder-specific worlds live in each folder's conftest."""

import uuid

import pytest
from django.core.cache import cache
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
