"""The settlement's set-based statements, as SQL for PostgreSQL and SQLite.

A month is settled in a handful of statements whatever its size (DESIGN.md: the database does the
set work): one `INSERT … SELECT` makes the missing statements, one `INSERT … SELECT … GROUP BY`
the service lines from the month's redemptions, one the adjustment lines, one `UPDATE` the
statements' figures from their lines. The same SQL runs on both databases except for sums of
money: PostgreSQL adds `numeric` exactly; SQLite stores decimals as binary floats, so there it
adds whole fen (`CAST(ROUND(x * 100) AS INTEGER)`) and divides once, which is exact too.

A redemption is paid in its month unless it was voided while the month was open: a void after
the month closed came with an adjustment (kind `void`) in a later month, so the redemption stays
in its own month's statement and its reversal in the later one. Every settlement of a month thus
sees the same set, whenever it runs: the figures are reproducible.
"""

from django.db import connection

# A redemption's void that counts in its own month: one with no void-adjustment.
LEDGER = """
    FROM vouchers_redemption r
    LEFT JOIN vouchers_redemptionvoid v ON v.redemption_id = r.id
    LEFT JOIN billing_adjustment late ON late.redemption_id = r.id AND late.kind = 'void'
    WHERE r.service_month = %(month)s
"""
PAID = "(v.id IS NULL OR late.id IS NOT NULL)"


# The columns every statement line is written with (service lines and adjustment lines alike).
INSERT_LINE = """INSERT INTO billing_statementline (
        statement_id, kind, tier_code, service_item_id, redemption_count, void_count, quantity,
        amount, amount_currency, government_share, government_share_currency,
        senior_share, senior_share_currency, service_item_name
    )"""


def item_name(column: str) -> str:
    """SQL for a service item's name as it is now (a line keeps it: the name as settled)."""
    return f"(SELECT i.name FROM providers_serviceitem i WHERE i.id = {column})"


def money_sum(expression: str) -> str:
    """SQL for the exact sum of an amount column or expression, as an amount."""
    if connection.vendor == "sqlite":
        return f"(COALESCE(SUM(CAST(ROUND(({expression}) * 100) AS INTEGER)), 0) / 100.0)"
    return f"COALESCE(SUM({expression}), 0)"


def fen_sum(expression: str) -> str:
    """SQL for the exact sum of an amount in a form that compares exactly (fen on SQLite)."""
    if connection.vendor == "sqlite":
        return f"COALESCE(SUM(CAST(ROUND(({expression}) * 100) AS INTEGER)), 0)"
    return f"COALESCE(SUM({expression}), 0)"


def fen(expression: str) -> str:
    """SQL for one amount in the form `fen_sum` compares with."""
    if connection.vendor == "sqlite":
        return f"CAST(ROUND(({expression}) * 100) AS INTEGER)"
    return f"({expression})"


def served_on() -> str:
    """SQL for the date of service, in Asia/Shanghai (a fixed UTC+8, no daylight saving)."""
    if connection.vendor == "sqlite":
        return "date(r.served_at, '+8 hours')"
    return "CAST((r.served_at AT TIME ZONE 'Asia/Shanghai') AS date)"


def missing_statements() -> str:
    """Insert a draft statement for every provider with services or adjustments in the month, or
    an active contract overlapping it, that has none yet (figures zero until `statement_figures`)."""
    return """
    INSERT INTO billing_statement (
        period_id, provider_id, state, redemption_count, void_count, adjustment_count,
        total_amount, total_amount_currency, government_total, government_total_currency,
        senior_total, senior_total_currency, created_at, prepared_at, prepared_by_id, prepared_by_job,
        review_note, payment_reference, provider_name
    )
    SELECT %(period)s, p.provider_id, 'draft', 0, 0, 0, 0, 'CNY', 0, 'CNY', 0, 'CNY',
           %(now)s, %(now)s, %(by)s, %(job)s, '', '',
           (SELECT pp.name FROM providers_provider pp WHERE pp.id = p.provider_id)
    FROM (
        SELECT DISTINCT provider_id FROM vouchers_redemption WHERE service_month = %(month)s
        UNION SELECT provider_id FROM billing_adjustment WHERE month = %(month)s
        UNION SELECT provider_id FROM providers_contract
              WHERE status = 'active' AND starts_on <= %(last_day)s AND ends_on >= %(month)s
    ) p
    WHERE NOT EXISTS (
        SELECT 1 FROM billing_statement s WHERE s.period_id = %(period)s AND s.provider_id = p.provider_id
    )
    """


def service_lines() -> str:
    """One line per statement, tier and service item: the month's paid redemptions, and how many
    were voided while the month was open."""
    return f"""
    {INSERT_LINE}
    SELECT s.id, 'service', g.tier_code, g.service_item_id, g.n, g.voided, g.quantity,
           g.amount, 'CNY', g.government, 'CNY', g.senior, 'CNY', {item_name("g.service_item_id")}
    FROM (
        SELECT r.provider_id, r.tier_code, r.service_item_id,
               SUM(CASE WHEN {PAID} THEN 1 ELSE 0 END) AS n,
               SUM(CASE WHEN {PAID} THEN 0 ELSE 1 END) AS voided,
               {money_sum(f"CASE WHEN {PAID} THEN r.quantity ELSE 0 END")} AS quantity,
               {money_sum(f"CASE WHEN {PAID} THEN r.amount ELSE 0 END")} AS amount,
               {money_sum(f"CASE WHEN {PAID} THEN r.government_share ELSE 0 END")} AS government,
               {money_sum(f"CASE WHEN {PAID} THEN r.senior_share ELSE 0 END")} AS senior
        {LEDGER}
        GROUP BY r.provider_id, r.tier_code, r.service_item_id
    ) g
    JOIN billing_statement s ON s.period_id = %(period)s AND s.provider_id = g.provider_id
    """


def adjustment_lines() -> str:
    """One line per statement, tier and service item of the adjustments landing in the month."""
    return f"""
    {INSERT_LINE}
    SELECT s.id, 'adjustment', a.tier_code, a.service_item_id, COUNT(*), 0, {money_sum("a.quantity")},
           {money_sum("a.amount")}, 'CNY', {money_sum("a.government_share")}, 'CNY',
           {money_sum("a.senior_share")}, 'CNY', {item_name("a.service_item_id")}
    FROM billing_adjustment a
    JOIN billing_statement s ON s.period_id = %(period)s AND s.provider_id = a.provider_id
    WHERE a.month = %(month)s
    GROUP BY s.id, a.tier_code, a.service_item_id
    """


def statement_figures() -> str:
    """Every statement of the period gets the sums of its lines, back to draft with its preparer."""

    def of_lines(column: str, kind: str | None = None, money: bool = False) -> str:
        which = f" AND l.kind = '{kind}'" if kind else ""
        total = money_sum(f"l.{column}") if money else f"COALESCE(SUM(l.{column}), 0)"
        return f"(SELECT {total} FROM billing_statementline l WHERE l.statement_id = billing_statement.id{which})"

    return f"""
    UPDATE billing_statement SET
        redemption_count = {of_lines("redemption_count", "service")},
        void_count = {of_lines("void_count", "service")},
        adjustment_count = {of_lines("redemption_count", "adjustment")},
        total_amount = {of_lines("amount", money=True)},
        government_total = {of_lines("government_share", money=True)},
        senior_total = {of_lines("senior_share", money=True)},
        provider_name = (SELECT pp.name FROM providers_provider pp WHERE pp.id = billing_statement.provider_id),
        state = 'draft', prepared_at = %(now)s, prepared_by_id = %(by)s, prepared_by_job = %(job)s,
        reviewed_at = NULL, reviewed_by_id = NULL, review_note = ''
    WHERE period_id = %(period)s
    """


def run(sql: str, params: dict | None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def pg_ledger() -> str:
    """PostgreSQL: one pass over the month's redemptions, grouped as the service lines are
    (provider, tier, item): each line's paid services' count and sums, the services voided in the
    month, and how many paid services lie outside their voucher's validity or their contract,
    with the first and last such id (a sample: fixed-size aggregates keep the pass hashed). A
    plain SELECT, so that PostgreSQL may scan the ledger with parallel workers (an
    INSERT … SELECT may not); `insert_service_lines` then writes the few hundred lines it answers.

    A service is checked against its voucher's days only where the voucher's window does not
    cover the whole month (issued late, revoked early) or the voucher is not of the month; likewise
    its contract's. The voucher and contract tables are joined, not read through CTEs, so that the
    planner hashes the small sides."""
    on_shanghai = "::timestamp AT TIME ZONE 'Asia/Shanghai'"
    voucher_ok = (
        "CASE WHEN w.id IS NULL THEN false"
        " WHEN w.valid_from <= %(month)s AND w.valid_until >= %(last_day)s THEN true"
        f" ELSE r.served_at >= w.valid_from{on_shanghai} AND r.served_at < (w.valid_until + 1){on_shanghai} END"
    )
    contract_ok = (
        "CASE WHEN c.provider_id <> r.provider_id OR c.service_item_id <> r.service_item_id THEN false"
        " WHEN c.starts_on <= %(month)s AND c.ends_on >= %(last_day)s THEN true"
        f" ELSE r.served_at >= c.starts_on{on_shanghai} AND r.served_at < (c.ends_on + 1){on_shanghai} END"
    )
    joins = (
        "LEFT JOIN vouchers_voucher w ON w.id = r.voucher_id AND w.period = %(month)s "
        "JOIN (SELECT ci.id, ci.service_item_id, k.provider_id, k.starts_on, k.ends_on"
        "      FROM providers_contractitem ci JOIN providers_contract k ON k.id = ci.contract_id) c"
        " ON c.id = r.contract_item_id WHERE"
    )
    # Each service's three facts are worked out once (OFFSET 0 keeps the subquery from being
    # folded into the aggregates, which would work them out once per aggregate).
    return f"""
    SELECT provider_id, tier_code, service_item_id,
           COUNT(*) FILTER (WHERE paid) AS n, COUNT(*) FILTER (WHERE NOT paid) AS voided,
           COALESCE(SUM(quantity) FILTER (WHERE paid), 0) AS quantity,
           COALESCE(SUM(amount) FILTER (WHERE paid), 0) AS amount,
           COALESCE(SUM(government_share) FILTER (WHERE paid), 0) AS government,
           COALESCE(SUM(senior_share) FILTER (WHERE paid), 0) AS senior,
           COUNT(*) FILTER (WHERE paid AND NOT voucher_ok) AS invalid_n,
           MIN(id) FILTER (WHERE paid AND NOT voucher_ok) AS invalid_first,
           MAX(id) FILTER (WHERE paid AND NOT voucher_ok) AS invalid_last,
           COUNT(*) FILTER (WHERE paid AND NOT contract_ok) AS off_n,
           MIN(id) FILTER (WHERE paid AND NOT contract_ok) AS off_first,
           MAX(id) FILTER (WHERE paid AND NOT contract_ok) AS off_last
    FROM (
        SELECT r.id, r.provider_id, r.tier_code, r.service_item_id, r.quantity, r.amount,
               r.government_share, r.senior_share, {PAID} AS paid,
               {voucher_ok} AS voucher_ok, {contract_ok} AS contract_ok
        {LEDGER.replace("WHERE", joins, 1)}
        OFFSET 0
    ) f
    GROUP BY provider_id, tier_code, service_item_id
    """


# The columns of `pg_ledger`'s rows that make a service line, in `insert_service_lines`' order.
LINE_COLUMNS = (
    ("provider_id", "bigint"),
    ("tier_code", "varchar"),
    ("service_item_id", "bigint"),
    ("n", "bigint"),
    ("voided", "bigint"),
    ("quantity", "numeric"),
    ("amount", "numeric"),
    ("government", "numeric"),
    ("senior", "numeric"),
)


def insert_service_lines() -> str:
    """PostgreSQL: the service lines `pg_ledger` answered, in one INSERT … SELECT from arrays
    (one per column: `%(provider_id)s`, `%(tier_code)s`, …), each joined to its statement."""
    arrays = ", ".join(f"%({name})s::{kind}[]" for name, kind in LINE_COLUMNS)
    names = ", ".join(name for name, _kind in LINE_COLUMNS)
    return f"""
    {INSERT_LINE}
    SELECT s.id, 'service', g.tier_code, g.service_item_id, g.n, g.voided, g.quantity,
           g.amount, 'CNY', g.government, 'CNY', g.senior, 'CNY', {item_name("g.service_item_id")}
    FROM unnest({arrays}) AS g({names})
    JOIN billing_statement s ON s.period_id = %(period)s AND s.provider_id = g.provider_id
    """


def provider_ledger() -> str:
    """Any database: per provider, the month's paid services (count and sums) — for SQLite, where
    `pg_ledger` does not run."""
    return f"""
    SELECT r.provider_id, COUNT(*), {money_sum("r.amount")}, {money_sum("r.government_share")},
           {money_sum("r.senior_share")}
    {LEDGER} AND {PAID}
    GROUP BY r.provider_id
    """


def fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
