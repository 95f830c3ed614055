"""What the benchmarks share: reaching the PostgreSQL server of DATABASE_URL and a throwaway
database on it (dropped and created again by each run)."""

import os
import sys


def database_url(script: str) -> str:
    """DATABASE_URL, or exit saying how to set it for `script` (e.g. "bench/redeem.py")."""
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit(
            "Set DATABASE_URL to a PostgreSQL server, e.g.\n"
            f"  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python {script}"
        )
    return url


def server_config(url: str, *, why: str) -> dict:
    """Connection settings of the PostgreSQL server in DATABASE_URL; exits, saying `why` the
    benchmark needs PostgreSQL, on anything else."""
    import environ

    config = environ.Env.db_url_config(url)
    if "postgresql" not in config["ENGINE"]:
        sys.exit(
            f"{why}; DATABASE_URL points at {config['ENGINE'].rsplit('.', 1)[-1]}. Set e.g.\n"
            "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres"
        )
    return config


def connect(config: dict, dbname: str):
    import psycopg2

    return psycopg2.connect(
        dbname=dbname,
        user=config.get("USER") or None,
        password=config.get("PASSWORD") or None,
        host=config.get("HOST") or None,
        port=config.get("PORT") or None,
    )


def recreate_database(config: dict, name: str, *, create: bool) -> None:
    """Drop the database `name` if it exists, and create it afresh when `create`."""
    from psycopg2 import sql

    admin = connect(config, "postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            if create:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()
