"""Fixtures shared by every test folder. Folder-specific worlds live in each folder's conftest."""

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def api_client() -> APIClient:
    """An unauthenticated API client; tests add credentials themselves."""
    return APIClient()
