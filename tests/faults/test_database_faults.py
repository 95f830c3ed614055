"""PostgreSQL restarts and failovers (issue 11): a request whose database connection dies answers
a retryable 503 `service_unavailable` that claims nothing was written, a retry with the same
idempotency key records the service exactly once, and a kept connection that died between
requests is replaced before it is used (CONN_HEALTH_CHECKS). Only the test database's own
backends are killed."""

import io
import json
import time

import psycopg2
import pytest
import requests
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import OperationalError, connection

from billing import pricing
from tests.vouchers.conftest import NOW, REDEEM, build_world
from vouchers.models import Redemption


def postgres_only(test):
    return pytest.mark.postgres(
        pytest.mark.skipif(connection.vendor != "postgresql", reason="kills a PostgreSQL backend")(test)
    )


def body(world, key: str) -> dict:
    return {
        "token": world.token("subsidized"),
        "service_item": "meal",
        "quantity": "1",
        "idempotency_key": key,
    }


def kill_backend(pid: int) -> None:
    """pg_terminate_backend from a connection of the test's own, and wait until it is gone."""
    params = connection.get_connection_params()
    killer = psycopg2.connect(
        **{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port", "password")}
    )
    killer.autocommit = True
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(100):
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                if cursor.fetchone()[0] == 0:
                    return
                time.sleep(0.02)
    finally:
        killer.close()


def test_a_database_failure_in_a_view_answers_a_retryable_503(world, monkeypatch):
    # given a database that fails under the scan (as a restart does), on any database
    def failing(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(pricing, "split_price", failing)

    # when a service is scanned
    response = world.client().post(REDEEM, body(world, "db-fault-1"), format="json")

    # then the answer is retryable and claims nothing
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert response.json()["code"] == "service_unavailable"
    assert response.json()["recorded"] is None
    assert response.json()["detail"]


def test_a_page_whose_database_fails_answers_a_plain_503_page(client, monkeypatch, django_user_model):
    user = django_user_model.objects.create_user("someone", password="pw-for-tests-1")
    client.force_login(user)

    def failing(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("config.views.home_links", failing)
    response = client.get("/")

    assert response.status_code == 503
    assert "Retry-After" in response
    assert "暂时" in response.content.decode()


@pytest.fixture
def committed_world(transactional_db, monkeypatch):
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    return build_world()


@postgres_only
def test_a_scan_whose_backend_is_killed_answers_503_and_its_retry_records_it_once(
    committed_world, live_server, monkeypatch
):
    world = committed_world
    # given a scan whose database backend is killed under it, after the voucher is locked
    original = pricing.split_price
    killed = []

    def kill_then_split(*args, **kwargs):
        if not killed:
            from django.db import connection as request_connection  # the serving thread's own

            killed.append(request_connection.connection.get_backend_pid())
            kill_backend(killed[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(pricing, "split_price", kill_then_split)
    headers = {"Authorization": f"Bearer {world.device_token}", "Accept-Language": "en"}
    url = live_server.url + REDEEM

    # when the scanner sends it, and again with the same key as the answer asks
    started = time.monotonic()
    first = requests.post(url, json=body(world, "killed-0001"), headers=headers, timeout=10)
    first_took = time.monotonic() - started
    retry = requests.post(url, json=body(world, "killed-0001"), headers=headers, timeout=10)
    again = requests.post(url, json=body(world, "killed-0001"), headers=headers, timeout=10)

    # then the first answer is a retryable 503 that claims nothing, and the service is recorded once
    assert killed, "the backend was not killed: the test would prove nothing"
    assert first.status_code == 503, first.text
    assert first.json()["code"] == "service_unavailable" and first.json()["recorded"] is None
    assert int(first.headers["Retry-After"]) >= 1
    assert (retry.status_code, again.status_code) == (201, 200)  # recorded, then the same one replayed
    assert retry.json()["id"] == again.json()["id"]
    assert Redemption.objects.filter(idempotency_key="killed-0001").count() == 1
    print(f"\nbackend killed under a scan: 3 requests, 1 503 (retryable), 0 500, longest {first_took:.3f} s")


def _wsgi_post(handler, path: str, payload: dict, token: str) -> tuple[int, dict]:
    """A request through Django's own WSGI handler in this thread, signals included (the test
    client skips closing old connections, which is what a health check is about)."""
    raw = json.dumps(payload).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "REMOTE_ADDR": "127.0.0.1",
    }
    status = []
    chunks = handler(environ, lambda s, h, *a: status.append(s))
    content = b"".join(chunks)
    return int(status[0].split()[0]), json.loads(content)


@postgres_only
def test_a_kept_connection_killed_between_requests_is_replaced_before_use(committed_world):
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0
    world = committed_world
    handler = WSGIHandler()

    # given a connection kept from one request to the next, then killed (a PostgreSQL restart)
    first = _wsgi_post(handler, REDEEM, body(world, "kept-0001"), world.device_token)
    assert first[0] == 201
    pid = connection.connection.get_backend_pid()
    kill_backend(pid)

    # when the next request comes
    second = _wsgi_post(handler, REDEEM, body(world, "kept-0002"), world.device_token)

    # then it is served on a new connection, not answered 500 from the dead one
    assert second[0] == 201, second
    assert connection.connection.get_backend_pid() != pid
