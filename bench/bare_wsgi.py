"""The bare baseline of bench/redeem_http.py: a plain WSGI callable, no framework.

It answers the same two requests as the scanner API on the same gunicorn, doing the least each
can cost: parse the JSON body, look the bearer token's device up (one indexed SELECT), then
- POST /api/v1/vouchers/verify/: one SELECT of the voucher row;
- POST /api/v1/redemptions/: BEGIN; SELECT … FOR UPDATE of the voucher; INSERT the redemption;
  UPDATE the balance; COMMIT (bench/redeem.py's bare loop, over HTTP).
No signature check, no other checks. One psycopg2 connection per worker thread, kept.

Configured by the environment variable BENCH_BARE_CONFIG (JSON, written by bench/redeem_http.py):
{"database": {psycopg2.connect keywords}, "contract_item_id", "service_item_id", "service_item",
"unit_price", "month"}. Serve it with `gunicorn bench.bare_wsgi:application` from the repository.
"""

import base64
import datetime as dt
import hashlib
import json
import os
import threading
from decimal import Decimal

import psycopg2

from bench.redeem import INSERT_REDEMPTION  # the statement of bench/redeem.py's bare loop
from billing.pricing import split_price  # pure: imports nothing of Django

CONFIG = json.loads(os.environ.get("BENCH_BARE_CONFIG", "{}"))
UNIT_PRICE = Decimal(CONFIG.get("unit_price", "0"))
QUANTITY = Decimal("1")
_local = threading.local()

DEVICE = """
    SELECT d.id, d.staff_id, s.provider_id FROM providers_device d
    JOIN providers_staffmember s ON s.id = d.staff_id
    WHERE d.token_hash = %s AND d.revoked_at IS NULL
"""
VOUCHER = """
    SELECT id, period, tier_code, balance, face_value, valid_until FROM vouchers_voucher WHERE id = %s
"""


class Refused(Exception):
    def __init__(self, status: str, code: str):
        super().__init__(code)
        self.status, self.code = status, code


def _connection():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg2.connect(**CONFIG["database"])
        conn.autocommit = True  # reads need no transaction; the redemption opens its own
        _local.conn = conn
    return conn


def _voucher_id(scanned: str) -> int:
    """The voucher id printed in the code (bytes 1–6); the signature is not checked."""
    code = scanned.strip().rstrip("/").rsplit("/", 1)[-1]
    try:
        return int.from_bytes(base64.b32decode(code)[1:7], "big")
    except ValueError:
        raise Refused("400 Bad Request", "invalid_token") from None


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def verify(cursor, device, body: dict) -> tuple[str, dict]:
    cursor.execute(VOUCHER, (_voucher_id(body["token"]),))
    row = cursor.fetchone()
    if row is None:
        raise Refused("400 Bad Request", "invalid_token")
    voucher_id, period, tier_code, balance, face_value, valid_until = row
    return "200 OK", {
        "voucher_id": voucher_id,
        "period": f"{period:%Y-%m}",
        "tier": tier_code,
        "balance": _money(balance),
        "face_value": _money(face_value),
        "currency": "CNY",
        "valid_until": valid_until.isoformat(),
        "service_items": [{"code": CONFIG["service_item"], "unit_price": _money(UNIT_PRICE)}],
    }


def redeem(cursor, device, body: dict) -> tuple[str, dict]:
    device_id, staff_id, provider_id = device
    voucher_id = _voucher_id(body["token"])
    cursor.execute("BEGIN")
    try:
        cursor.execute(
            "SELECT balance, government_share_rate, tier_code FROM vouchers_voucher WHERE id = %s FOR UPDATE",
            (voucher_id,),
        )
        balance, rate, tier_code = cursor.fetchone()
        split = split_price(
            unit_price=UNIT_PRICE, quantity=QUANTITY, government_share_rate=rate, balance=balance
        )
        now = dt.datetime.now(dt.UTC)
        cursor.execute(
            INSERT_REDEMPTION,
            (
                voucher_id,
                provider_id,
                CONFIG["contract_item_id"],
                CONFIG["service_item_id"],
                staff_id,
                device_id,
                QUANTITY,
                UNIT_PRICE,
                split.amount,
                split.government_share,
                split.senior_share,
                tier_code,
                rate,
                CONFIG["month"],
                now,
                now,
                body["idempotency_key"],
            ),
        )
        (redemption_id,) = cursor.fetchone()
        cursor.execute(
            "UPDATE vouchers_voucher SET balance = balance - %s WHERE id = %s",
            (split.government_share, voucher_id),
        )
        cursor.execute("COMMIT")
    except BaseException:
        cursor.execute("ROLLBACK")
        raise
    return "201 Created", {
        "id": redemption_id,
        "voucher_id": voucher_id,
        "service_item": CONFIG["service_item"],
        "quantity": f"{QUANTITY:f}",
        "amount": _money(split.amount),
        "government_share": _money(split.government_share),
        "senior_share": _money(split.senior_share),
        "currency": "CNY",
        "idempotency_key": body["idempotency_key"],
        "served_at": now.isoformat(),
        "remaining_balance": _money(balance - split.government_share),
    }


ROUTES = {"/api/v1/vouchers/verify/": verify, "/api/v1/redemptions/": redeem}


def _respond(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is None or environ["REQUEST_METHOD"] != "POST":
        return _respond(start_response, "404 Not Found", {"code": "not_found"})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    try:
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        scheme, _, raw_token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not raw_token:
            raise Refused("401 Unauthorized", "not_authenticated")
        with _connection().cursor() as cursor:
            cursor.execute(DEVICE, (hashlib.sha256(raw_token.encode()).hexdigest(),))
            device = cursor.fetchone()
            if device is None:
                raise Refused("401 Unauthorized", "not_authenticated")
            status, answer = route(cursor, device, body)
    except Refused as refusal:
        return _respond(start_response, refusal.status, {"code": refusal.code})
    except (ValueError, KeyError, TypeError):
        return _respond(start_response, "400 Bad Request", {"code": "invalid_input"})
    except psycopg2.Error as error:
        conn = getattr(_local, "conn", None)
        if conn is not None:
            conn.close()  # a fresh connection next time
        return _respond(
            start_response, "500 Internal Server Error", {"code": "server_error", "detail": str(error)}
        )
    return _respond(start_response, status, answer)
