"""The redemption's hot path on PostgreSQL, in three plain statements.

`vouchers.services.redeem` (and check-out) does the same work on every database; on PostgreSQL,
where scanning at city scale happens, these statements replace the ORM's queries of the locked
section with narrow hand-written SQL, so that a redemption costs about what the bare lock–insert–
debit transaction does (bench/redeem.py measures both):

1. `lock_voucher`: the voucher row FOR UPDATE with just the columns the checks read, and its
   senior's name and community path.
2. `contract_item_and_month_closed`: the contract item that prices the service, and whether the
   month is closed, read after the caller took the month's shared advisory lock (so the closed
   check sees a settlement that committed while it waited).
3. `write_redemption`: the redemption, the debit and the scan's record in one statement (data-
   modifying CTEs); a duplicate idempotency key raises IntegrityError as the ORM's insert would.

Every rule stays in Python (`vouchers.services`, `vouchers.selectors`); these return model
instances built with `Model.from_db`, the way the ORM does, with only these fields loaded.
"""

import hashlib

from django.db import connection

from config.orm import PreparedStatement, loaded
from eligibility.models import Region, Senior, Tier
from providers.models import ContractItem, ServiceItem
from vouchers.models import Redemption, Voucher

CURRENCY = "CNY"
_VOUCHER_FIELDS = [
    "id",
    "period",
    "status",
    "token_version",
    "valid_from",
    "valid_until",
    "balance",
    "balance_currency",
    "face_value",
    "face_value_currency",
    "government_share_rate",
    "tier_code",
    "revoked_at",
    "senior_id",
    "tier_id",
]


def _voucher_sql(*, lock: bool) -> str:
    return f"""
        SELECT {", ".join(f"v.{name}" for name in _VOUCHER_FIELDS)}, s.name, s.community_id, r.path, t.name
        FROM vouchers_voucher v
        JOIN eligibility_senior s ON s.id = v.senior_id
        JOIN eligibility_region r ON r.id = s.community_id
        JOIN eligibility_tier t ON t.id = v.tier_id
        WHERE v.id = %(voucher)s
        {"FOR UPDATE OF v" if lock else ""}
    """  # noqa: S608 - column names are constants above


_LOCK = PreparedStatement("homecare_voucher_lock", _voucher_sql(lock=True))
_READ = PreparedStatement("homecare_voucher_read", _voucher_sql(lock=False))

# The provider's contract items on a day whose contract's area covers one of the paths (a
# community and the regions above it), one per service item: its newest contract's. With a code,
# that item only, and whether `month` is closed.
_CONTRACT_ITEMS = PreparedStatement(
    "homecare_contract_items",
    """
    SELECT DISTINCT ON (si.code)
           ci.id, ci.contract_id, ci.unit_price, ci.visit_increment_minutes, ci.visit_max_minutes,
           si.id, si.code, si.name, si.name_en, si.unit, si.category, si.quantity_step, si.is_active,
           EXISTS (SELECT 1 FROM vouchers_closedmonth WHERE month = %(month)s::date)
    FROM providers_contractitem ci
    JOIN providers_contract c ON c.id = ci.contract_id
    JOIN providers_serviceitem si ON si.id = ci.service_item_id
    WHERE c.provider_id = %(provider)s AND c.status = 'active'
      AND c.starts_on <= %(day)s AND c.ends_on >= %(day)s
      AND (%(code)s::text IS NULL OR si.code = %(code)s::text) AND si.is_active
      AND EXISTS (
          SELECT 1 FROM providers_contract_service_area a
          JOIN eligibility_region area ON area.id = a.region_id
          WHERE a.contract_id = c.id AND area.path = ANY(%(paths)s)
      )
    ORDER BY si.code, c.starts_on DESC, ci.contract_id DESC
""",
)

_WRITE = PreparedStatement(
    "homecare_redemption_write",
    """
    WITH redemption AS (
        INSERT INTO vouchers_redemption (
            voucher_id, provider_id, contract_item_id, service_item_id, staff_id, device_id, quantity,
            unit_price, unit_price_currency, amount, amount_currency, government_share,
            government_share_currency, senior_share, senior_share_currency, tier_code,
            government_share_rate, service_month, served_at, recorded_at, started_at, ended_at,
            latitude, longitude, location_accuracy, offline, idempotency_key
        ) VALUES (
            %(voucher)s, %(provider)s, %(contract_item)s, %(service_item)s, %(staff)s, %(device)s,
            %(quantity)s, %(unit_price)s, 'CNY', %(amount)s, 'CNY', %(government_share)s, 'CNY',
            %(senior_share)s, 'CNY', %(tier_code)s, %(rate)s, %(service_month)s, %(served_at)s,
            %(now)s, %(started_at)s, %(ended_at)s, %(latitude)s, %(longitude)s, %(accuracy)s,
            %(offline)s, %(key)s
        )
        RETURNING id
    ),
    debit AS (
        UPDATE vouchers_voucher SET balance = %(balance)s::numeric
        WHERE id = %(voucher)s::bigint AND %(debits)s::boolean
    ),
    attempt AS (
        INSERT INTO vouchers_scanattempt (device_id, staff_id, voucher_id, action, outcome, scanned_hash, at)
        SELECT %(device)s::bigint, %(staff)s::bigint, %(voucher)s::bigint, %(action)s::text, 'ok',
               %(scanned_hash)s::text, %(now)s::timestamptz
        WHERE %(action)s::text <> ''
    )
    SELECT id FROM redemption
""",
)


def lock_voucher(voucher_id: int) -> Voucher | None:
    """The voucher, locked until the transaction ends, with its senior, community and tier name."""
    return _voucher(_LOCK, voucher_id)


def voucher_for_scan(voucher_id: int) -> Voucher | None:
    """The voucher as `lock_voucher` reads it, without the lock (verify changes nothing)."""
    return _voucher(_READ, voucher_id)


def _voucher(statement: PreparedStatement, voucher_id: int) -> Voucher | None:
    with connection.cursor() as cursor:
        statement.execute(cursor, {"voucher": voucher_id})
        row = cursor.fetchone()
    if row is None:
        return None
    *fields, name, community_id, path, tier_name = row
    voucher = loaded(Voucher, dict(zip(_VOUCHER_FIELDS, fields, strict=True)))
    senior = loaded(Senior, {"id": voucher.senior_id, "name": name, "community_id": community_id})
    senior.community = loaded(Region, {"id": community_id, "path": path})
    voucher.senior = senior
    voucher.tier = loaded(Tier, {"id": voucher.tier_id, "name": tier_name})
    return voucher


_SERVICE_ITEM_FIELDS = ["id", "code", "name", "name_en", "unit", "category", "quantity_step", "is_active"]


def contract_items(*, provider_id: int, day, paths: list[str], code: str | None = None, month=None):
    """[(contract item with its service item, whether `month` is closed)], one per service item
    (`_CONTRACT_ITEMS`), by code."""
    with connection.cursor() as cursor:
        _CONTRACT_ITEMS.execute(
            cursor, {"month": month, "provider": provider_id, "day": day, "code": code, "paths": paths}
        )
        rows = cursor.fetchall()
    found = []
    for item_id, contract_id, price, increment, maximum, *service, closed in rows:
        service_item = loaded(ServiceItem, dict(zip(_SERVICE_ITEM_FIELDS, service, strict=True)))
        contract_item = loaded(
            ContractItem,
            {
                "id": item_id,
                "contract_id": contract_id,
                "service_item_id": service_item.pk,
                "unit_price": price,
                "unit_price_currency": CURRENCY,
                "visit_increment_minutes": increment,
                "visit_max_minutes": maximum,
            },
        )
        contract_item.service_item = service_item
        found.append((contract_item, closed))
    return found


def contract_item_and_month_closed(
    *, provider_id: int, service_item_code: str, day, month, paths: list[str]
) -> tuple[ContractItem | None, bool | None]:
    """The item that prices a service of `service_item_code`, and whether `month` is closed
    (None, None when there is no such item: the caller asks why)."""
    found = contract_items(provider_id=provider_id, day=day, paths=paths, code=service_item_code, month=month)
    return found[0] if found else (None, None)


def write_redemption(*, redemption: Redemption, new_balance, attempt: tuple[str, str] | None, now) -> None:
    """Insert `redemption` (unsaved; its pk and recorded_at are set here), set the voucher's
    balance to `new_balance` if it changed, and record the scan (`attempt` = (action, scanned))."""
    action, scanned = attempt or ("", "")
    location = (redemption.latitude, redemption.longitude, redemption.location_accuracy)
    params = {
        "voucher": redemption.voucher_id,
        "provider": redemption.provider_id,
        "contract_item": redemption.contract_item_id,
        "service_item": redemption.service_item_id,
        "staff": redemption.staff_id,
        "device": redemption.device_id,
        "quantity": redemption.quantity,
        "unit_price": redemption.unit_price.amount,
        "amount": redemption.amount.amount,
        "government_share": redemption.government_share.amount,
        "senior_share": redemption.senior_share.amount,
        "tier_code": redemption.tier_code,
        "rate": redemption.government_share_rate,
        "service_month": redemption.service_month,
        "served_at": redemption.served_at,
        "now": now,
        "started_at": redemption.started_at,
        "ended_at": redemption.ended_at,
        "latitude": location[0],
        "longitude": location[1],
        "accuracy": location[2],
        "offline": redemption.offline,
        "key": redemption.idempotency_key,
        "balance": new_balance,
        "debits": bool(redemption.government_share.amount),
        "action": action,
        "scanned_hash": hashlib.sha256((scanned or "").encode()).hexdigest(),
    }
    with connection.cursor() as cursor:
        _WRITE.execute(cursor, params)
        (redemption.pk,) = cursor.fetchone()
    redemption.recorded_at = now
    redemption._state.adding = False
    redemption._state.db = connection.alias


_ATTEMPT = PreparedStatement(
    "homecare_scan_attempt",
    """
    INSERT INTO vouchers_scanattempt (device_id, staff_id, voucher_id, action, outcome, scanned_hash, at)
    VALUES (%(device)s::bigint, %(staff)s::bigint, %(voucher)s::bigint, %(action)s::text, %(outcome)s::text,
            %(scanned_hash)s::text, %(now)s::timestamptz)
    """,
)


def write_attempt(
    *, device_id, staff_id, voucher_id, action: str, outcome: str, scanned_hash: str, now
) -> None:
    """One scan's record (`vouchers.ScanAttempt`)."""
    with connection.cursor() as cursor:
        _ATTEMPT.execute(
            cursor,
            {
                "device": device_id,
                "staff": staff_id,
                "voucher": voucher_id,
                "action": action,
                "outcome": outcome,
                "scanned_hash": scanned_hash,
                "now": now,
            },
        )
