"""Hand-written SQL for the few hot paths that need it (the scanner's): model instances from its
rows, and statements PostgreSQL plans once per connection instead of at every call."""

import re

from django.conf import settings
from django.db import connection

_NAMED = re.compile(r"%\((\w+)\)s")


def loaded(model, values: dict):
    """An instance of `model` with just these fields (attnames) loaded, as the ORM makes one
    (`Model.from_db` takes the values in the model's field order); others load when read."""
    names = [field.attname for field in model._meta.concrete_fields if field.attname in values]
    return model.from_db(connection.alias, names, [values[name] for name in names])


class PreparedStatement:
    """A statement with %(name)s parameters, run as a PostgreSQL prepared statement (PREPARE
    once on each database connection, then EXECUTE): planning a join costs more than running it.

    Prepared statements live in the database session, across transactions, so this needs a
    connection of its own per session: behind a PgBouncer in transaction mode set
    DATABASE_PREPARED_STATEMENTS=0, and the statements are sent as plain ones."""

    def __init__(self, name: str, sql: str):
        self.name = name
        self.sql = sql
        self.order: list[str] = []
        for param in _NAMED.findall(sql):
            if param not in self.order:
                self.order.append(param)
        self.prepare = f"PREPARE {name} AS " + _NAMED.sub(
            lambda m: f"${self.order.index(m.group(1)) + 1}", sql
        )
        self.run = (
            f"EXECUTE {name} ({', '.join(['%s'] * len(self.order))})" if self.order else f"EXECUTE {name}"
        )

    def execute(self, cursor, params: dict) -> None:
        if not settings.DATABASE_PREPARED_STATEMENTS:
            cursor.execute(self.sql, params)
            return
        raw = connection.connection  # the driver's connection: a new one after a reconnect
        state = getattr(connection, "_prepared_statements", None)
        if state is None or state[0] is not raw:
            state = (raw, set())
            connection._prepared_statements = state
        if self.name not in state[1]:
            cursor.execute(self.prepare)
            state[1].add(self.name)
        cursor.execute(self.run, [params[name] for name in self.order])
