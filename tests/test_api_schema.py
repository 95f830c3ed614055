"""The API against its own OpenAPI schema, with schemathesis: generated requests (valid and
invalid) to every operation, as a signed-in scanner, must never answer 5xx, never an error body
that is not JSON `{code, detail}`, and never a status, header or body the schema does not state."""

import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from providers.services import register_device
from tests.factories import StaffMemberFactory, make_community, make_priced_contract

# At import: the schema needs no database (the test settings allow schemathesis's host, localhost).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schemathesis.check
def errors_are_json_code_and_detail(ctx, response, case):
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), (
            f"{response.status_code} answered {response.headers.get('content-type')}"
        )
        body = json.loads(response.content)
        assert isinstance(body, dict) and body.get("code") and body.get("detail"), body


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    errors_are_json_code_and_detail,
]


@pytest.fixture
def keep_the_test_connection():
    """Call the real WSGI application inside the test's transaction: as Django's test client
    does, stop it closing "old" connections at each request's start and end."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def device_token(db, keep_the_test_connection):
    contract = make_priced_contract(area=[make_community("S").parent])
    staff = StaffMemberFactory(provider=contract.provider)
    return register_device(user=staff.user, name="schemathesis")[1]


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_keeps_to_its_schema(case, device_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {device_token}"}, checks=CHECKS)
