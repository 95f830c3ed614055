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


def show(config: dict, dbname: str, *settings: str) -> list[str]:
    """The server's values of `settings` (SHOW server_version, work_mem, …), for a benchmark's header."""
    conn = connect(config, dbname)
    try:
        with conn.cursor() as cursor:
            values = []
            for name in settings:
                cursor.execute(f"SHOW {name}")
                values.append(cursor.fetchone()[0])
        return values
    finally:
        conn.close()


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


def setup_django(url: str, db_name: str) -> None:
    """Set Django up on the throwaway database `db_name` of the server in `url`, production-like:
    DEBUG off (it would keep every query in memory), a throwaway SECRET_KEY and a throwaway voucher
    signing key (the settings refuse to start without them)."""
    import base64
    from urllib.parse import urlsplit

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    os.environ["DATABASE_URL"] = urlsplit(url)._replace(path=f"/{db_name}").geturl()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production")
    if not (os.environ.get("VOUCHER_SIGNING_KEY") or os.environ.get("VOUCHER_SIGNING_KEY_FILE")):
        raw = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        os.environ["VOUCHER_SIGNING_KEY"] = base64.b64encode(raw).decode()
    os.environ["DEBUG"] = "0"
    import django

    django.setup()
