#!/usr/bin/env python
"""Scanning over HTTP: verify + redeem against the app on gunicorn, and against a bare WSGI app
(bench/bare_wsgi.py) on the same gunicorn, in the same run.

Usage (PostgreSQL and Redis; the database in the URL is used only to reach the server):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/redeem_http.py

It creates a throwaway database (`homecare_bench_http` by default; dropped first if it exists and
dropped again at the end), migrates it, builds a provider contracted for a per-visit item, one
staff member with a device token and seniors with vouchers per scanner, starts both servers, and
for 1, 16 and 64 concurrent scanners alternates runs of the service and of the bare app: each
scanner a thread with one keep-alive HTTP/1.1 connection on loopback, looping verify then redeem.
Then it profiles the service in-process. See bench/README.md.
"""

import argparse
import contextlib
import cProfile
import http.client
import io
import json
import multiprocessing
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import (  # noqa: E402
    connect,
    database_url,
    recreate_database,
    server_config,
    setup_django,
    show,
)
from bench.redeem import BATHING, UNIT_PRICE, build_fixtures  # noqa: E402  (a per-visit item, subsidized)

# High enough that no scan is refused; every request still goes through the throttle.
THROTTLE_SCAN = "100000/min"
VERIFY_PATH = "/api/v1/vouchers/verify/"
REDEEM_PATH = "/api/v1/redemptions/"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KEY_PREFIX = {"service": "svc", "bare": "bare"}  # idempotency keys: the check counts the service's


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each measured run (default 10)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each kind per scanner count (default 3)"
    )
    parser.add_argument("--scanners", default="1,16,64", help='concurrent scanners, e.g. "1,16,64" (default)')
    parser.add_argument(
        "--workers", type=int, default=3, help="gunicorn worker processes, both apps (default 3)"
    )
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (default 8)")
    parser.add_argument(
        "--vouchers-per-scanner", type=int, default=2, help="each scanner's own vouchers, in turn (default 2)"
    )
    parser.add_argument(
        "--shared-vouchers",
        type=int,
        default=0,
        metavar="K",
        help="all scanners scan the same K vouchers (their row locks contend); 0: each its own (default)",
    )
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes the scanner threads are spread over, the same for both apps (default 2)",
    )
    parser.add_argument(
        "--warmup", type=float, default=3, help="unmeasured seconds per app first (default 3)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=300,
        help="scans profiled in-process after the runs; 0 skips (default 300)",
    )
    parser.add_argument(
        "--db-name", default="homecare_bench_http", help="the throwaway database (dropped and recreated)"
    )
    args = parser.parse_args()
    try:
        args.scanner_counts = [int(n) for n in args.scanners.split(",") if n.strip()]
    except ValueError:
        parser.error('--scanners is a comma-separated list of counts, e.g. "1,16,64"')
    if not args.scanner_counts or min(args.scanner_counts) < 1:
        parser.error("--scanners needs counts of at least 1")
    if min(args.repeats, args.workers, args.threads, args.vouchers_per_scanner, args.client_processes) < 1:
        parser.error(
            "--repeats, --workers, --threads, --vouchers-per-scanner, --client-processes: at least 1"
        )
    if args.seconds <= 0 or args.warmup < 0 or args.shared_vouchers < 0 or args.profile < 0:
        parser.error("--seconds must be positive; --warmup, --shared-vouchers and --profile not negative")
    return args


# ---------------------------------------------------------------- the client (spawned processes)


def _scanner(port, scanner, *, item, key_prefix, start_at, deadline, stop, out):
    """One scanner: one keep-alive connection, verify then redeem until the deadline."""
    index, device_token, cards = scanner
    headers = {
        "Authorization": f"Bearer {device_token}",
        "Content-Type": "application/json",
        "Accept-Language": "zh-hans",
    }
    latencies, error, began, ended = [], None, start_at, start_at
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.connect()
        time.sleep(max(0.0, start_at - time.perf_counter()))
        began = time.perf_counter()
        seq = 0
        while not stop.is_set() and time.perf_counter() < deadline:
            card = cards[seq % len(cards)]
            key = f"{key_prefix}-{index}-{seq}"
            started = time.perf_counter()
            for path, body, expected in (
                (VERIFY_PATH, {"token": card}, 200),
                (
                    REDEEM_PATH,
                    {"token": card, "service_item": item, "quantity": "1", "idempotency_key": key},
                    201,
                ),
            ):
                conn.request("POST", path, body=json.dumps(body), headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.status != expected:
                    error = f"POST {path} -> {response.status}, expected {expected}:\n{data.decode(errors='replace')}"
                    stop.set()
                    break
            if error:
                break
            ended = time.perf_counter()
            latencies.append(ended - started)
            seq += 1
    except (OSError, http.client.HTTPException) as exc:
        error = f"scanner {index}: {type(exc).__name__}: {exc}"
        stop.set()
    finally:
        conn.close()
    out.append(
        {
            "latencies": latencies,
            "ended": ended,
            "late": began - start_at if latencies else 0.0,
            "error": error,
        }
    )


def client_task(
    port: int, scanners: list, item: str, key_prefix: str, start_at: float, seconds: float
) -> dict:
    """A share of the scanners, each on its own thread; perf_counter is the system's monotonic
    clock on Linux, so `start_at` means the same moment in every process."""
    sys.setswitchinterval(0.001)  # hand the GIL over promptly to threads whose response came back
    stop, results = threading.Event(), []
    cpu = time.process_time()
    threads = [
        threading.Thread(
            target=_scanner,
            args=(port, scanner),
            kwargs={
                "item": item,
                "key_prefix": key_prefix,
                "start_at": start_at,
                "deadline": start_at + seconds,
                "stop": stop,
                "out": results,
            },
        )
        for scanner in scanners
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "latencies": [x for r in results for x in r["latencies"]],
        "ended": max(r["ended"] for r in results),
        "late": max(r["late"] for r in results),
        "errors": [r["error"] for r in results if r["error"]],
        "cpu": time.process_time() - cpu,
        "per_scanner": [len(r["latencies"]) for r in results],
    }


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_cpu(pids) -> dict[int, float]:
    """User + system CPU seconds of each of the processes `pids` that still exists."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return seconds


def cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings; a process new since `before` counts from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def backends_of(db_name: str) -> list[int]:
    """The PostgreSQL backends serving `db_name` (the server's shared processes, used by other
    databases on this machine too, are left out)."""
    pids = []
    for pid in pids_where(lambda name, _fields: name == "postgres"):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f" {db_name} " in command:
            pids.append(pid)
    return pids


def pids_where(test) -> list[int]:
    """Processes whose /proc/<pid>/stat (after the name) passes `test(name, fields)`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, ValueError):
            continue
        if test(name, rest.split()):
            pids.append(int(entry.name))
    return pids


class Server:
    """A gunicorn serving `app`, in its own process group (killed whole at the end)."""

    def __init__(self, *, kind: str, app: str, port: int, env: dict, args, log_dir: str):
        self.kind, self.port = kind, port
        self.log = Path(log_dir) / f"{kind}.log"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(args.threads),
            "--keep-alive",
            "10",
            "--backlog",
            "512",
            "--log-level",
            "warning",
            "--error-logfile",
            str(self.log),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the app answers an unauthenticated verify with 401 (both apps do)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{self.kind}: gunicorn exited ({self.process.returncode}):\n{self.log_tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("POST", VERIFY_PATH, body="{}", headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                if response.status == 401:
                    return
                sys.exit(
                    f"{self.kind}: an unauthenticated verify answered {response.status}:\n{self.log_tail()}"
                )
            except OSError:
                time.sleep(0.2)
            finally:
                conn.close()
        sys.exit(f"{self.kind}: not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def pids(self) -> list[int]:
        """The master and its workers (the process group)."""
        pgid = self.process.pid
        return pids_where(lambda _name, fields: int(fields[2]) == pgid)

    def log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # gunicorn's quick shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # any worker left behind


# ---------------------------------------------------------------- runs


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def run_load(pool, server: Server, plan: list, args, *, scanners: int, seconds: float, label: str):
    """`scanners` scanners against `server` for `seconds`; their figures, or exit on a bad answer."""
    processes, db_name = args.client_processes, args.db_name
    chosen = plan[:scanners]
    shares = [chosen[i::processes] for i in range(min(processes, scanners))]
    app_before, db_before = process_cpu(server.pids()), process_cpu(backends_of(db_name))
    start_at = time.perf_counter() + 0.5 + 0.01 * scanners  # time to connect every scanner first
    pending = [
        pool.apply_async(client_task, (server.port, share, BATHING["code"], label, start_at, seconds))
        for share in shares
    ]
    results = [p.get() for p in pending]
    app_cpu = cpu_since(app_before, process_cpu(server.pids()))
    db_cpu = cpu_since(db_before, process_cpu(backends_of(db_name)))
    errors = [e for r in results for e in r["errors"]]
    if errors:
        print(f"\n{server.kind} answered unexpectedly ({len(errors)} scanner(s)); the first:\n{errors[0]}")
        print(f"\n{server.kind} log:\n{server.log_tail()}")
        sys.exit(1)
    latencies = sorted(x for r in results for x in r["latencies"])
    if not latencies:
        sys.exit(f"{server.kind}: no scan completed in {seconds} s")
    elapsed = max(r["ended"] for r in results) - start_at
    scans = len(latencies)
    per_scanner = sorted(n for r in results for n in r["per_scanner"])
    return {
        "fairness": per_scanner[0] / per_scanner[-1] if per_scanner[-1] else 0.0,
        "scans": scans,
        "rate": scans / elapsed,
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "late": max(r["late"] for r in results) * 1000,
        "app_ms": app_cpu / scans * 1000,
        "db_ms": db_cpu / scans * 1000,
        "client_ms": sum(r["cpu"] for r in results) / scans * 1000,
    }


def describe(figures: dict) -> str:
    return (
        f"{figures['rate']:8.1f} scans/s  p50 {figures['p50']:7.1f} ms  p99 {figures['p99']:7.1f} ms  "
        f"({figures['scans']} scans; CPU per scan: app {figures['app_ms']:.1f} ms, "
        f"PostgreSQL {figures['db_ms']:.1f} ms, client {figures['client_ms']:.1f} ms; "
        f"fewest / most scans of one scanner {figures['fairness']:.2f})"
    )


# ---------------------------------------------------------------- setup and checks


def build_scanners(args):
    """Fixtures, one device per scanner, and the plan: (index, device token, cards) per scanner."""
    from django.db import connection

    from providers.services import register_device
    from vouchers.models import Voucher
    from vouchers.tokens import voucher_url

    scanners = max(args.scanner_counts)
    per = args.vouchers_per_scanner
    fixtures = build_fixtures(vouchers=args.shared_vouchers or scanners * per, staff_members=scanners)
    ids = [pk for pk, _token in fixtures["vouchers"]]
    urls = {v.pk: voucher_url(v) for v in Voucher.objects.filter(pk__in=ids)}  # what the QR code encodes
    cards = [urls[pk] for pk in ids]
    plan = []
    for i, staff in enumerate(fixtures["staff_members"]):
        _device, raw_token = register_device(user=staff.user, name=f"bench scanner {i + 1}")
        if args.shared_vouchers:
            own = cards[i % len(cards) :] + cards[: i % len(cards)]  # the same cards, each from its own start
        else:
            own = cards[i * per : (i + 1) * per]
        plan.append((i, raw_token, own))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return fixtures, plan


def bare_config(config: dict, db_name: str, fixtures: dict) -> str:
    item = fixtures["contract_item"]
    return json.dumps(
        {
            "database": {
                "dbname": db_name,
                "user": config.get("USER") or None,
                "password": config.get("PASSWORD") or None,
                "host": config.get("HOST") or None,
                "port": config.get("PORT") or None,
            },
            "contract_item_id": item.pk,
            "service_item_id": item.service_item_id,
            "service_item": BATHING["code"],
            "unit_price": str(UNIT_PRICE),
            "month": fixtures["month"].isoformat(),
        }
    )


def check_database(conn, *, service_created: int) -> bool:
    """The ledger after all runs: every balance is its face value less the government shares of
    its redemptions (none voided here), no idempotency key twice, one row per 201 of the service."""
    with conn.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE v.balance <> v.face_value - coalesce(r.spent, 0)),
                   count(*) FILTER (WHERE v.balance < 0)
            FROM vouchers_voucher v
            LEFT JOIN (SELECT voucher_id, sum(government_share) AS spent FROM vouchers_redemption
                       GROUP BY voucher_id) r ON r.voucher_id = v.id
            """
        )
        vouchers, wrong, negative = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM vouchers_redemption GROUP BY idempotency_key "
            "HAVING count(*) > 1) twice"
        )
        (twice,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FILTER (WHERE idempotency_key LIKE 'svc-%'), count(*), "
            "count(*) FILTER (WHERE senior_share <> 0 OR government_share <> amount) "
            "FROM vouchers_redemption"
        )
        service_rows, rows, shared = cursor.fetchone()
    conn.commit()
    ok = wrong == 0 and negative == 0 and twice == 0 and service_rows == service_created and shared == 0
    print(
        f"database check: {vouchers} vouchers, {rows} redemptions ({service_rows} by the service, "
        f"{service_created} answered 201): balance = face value - government shares for "
        f"{vouchers - wrong}/{vouchers}, negative balances {negative}, idempotency keys used twice {twice}, "
        f"rows with a senior share {shared} -> {'OK' if ok else 'FAILED'}"
    )
    return ok


# ---------------------------------------------------------------- the in-process profile


def wsgi_post(application, path: str, body: dict, device_token: str) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(data)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Bearer {device_token}",
        "HTTP_ACCEPT_LANGUAGE": "zh-hans",
        "wsgi.input": io.BytesIO(data),
        "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    status = []
    response = application(environ, lambda s, _headers, _exc=None: status.append(s))
    try:
        content = b"".join(response)
    finally:
        response.close()  # request_finished: what gunicorn's worker does after each response
    return int(status[0].split()[0]), content


class InProcessScanner:
    """verify + redeem through the WSGI application called in this process (no sockets)."""

    def __init__(self, application, plan_entry, label: str):
        self.application, (_index, self.device_token, self.cards) = application, plan_entry
        self.label, self.seq = label, 0

    def scan(self) -> None:
        card = self.cards[self.seq % len(self.cards)]
        key = f"{self.label}-{self.seq}"
        self.seq += 1
        for path, body, expected in (
            (VERIFY_PATH, {"token": card}, 200),
            (
                REDEEM_PATH,
                {"token": card, "service_item": BATHING["code"], "quantity": "1", "idempotency_key": key},
                201,
            ),
        ):
            status, content = wsgi_post(self.application, path, body, self.device_token)
            if status != expected:
                sys.exit(f"in-process POST {path} -> {status}, expected {expected}:\n{content.decode()}")

    def timed(self, n: int) -> float:
        """Median milliseconds per scan over n scans."""
        times = []
        for _ in range(n):
            started = time.perf_counter()
            self.scan()
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000


# (label, file path ending, function names, how to combine the functions of one name in that
# file): cumulative time per scan from the profile. `max` where they call each other (a
# subclass's method calling its parent's), `sum` where they are separate (the two views' post).
# Several names are added up (the cache calls).
PROFILE_PARTS = [
    ("whole request (WSGIHandler.__call__)", "django/core/handlers/wsgi.py", ("__call__",), max),
    (
        "  inside the middleware (BaseHandler._get_response)",
        "django/core/handlers/base.py",
        ("_get_response",),
        max,
    ),
    ("    URL resolving", "django/urls/resolvers.py", ("resolve",), max),
    ("    DRF APIView.dispatch", "rest_framework/views.py", ("dispatch",), max),
    ("      DRF initial(): auth, permissions, throttle", "rest_framework/views.py", ("initial",), max),
    (
        "        device token lookup (DeviceTokenAuthentication)",
        "providers/authentication.py",
        ("authenticate",),
        max,
    ),
    ("        scan throttle (allow_request)", "throttling.py", ("allow_request",), max),
    (
        "          Redis cache calls",
        "django/core/cache/backends/redis.py",
        ("get", "set", "add", "incr"),
        max,
    ),
    ("      request body parsing (Request.data)", "rest_framework/request.py", ("data",), max),
    ("      the two views' post()", "vouchers/api.py", ("post",), sum),
    ("        selectors.voucher_for_scan (verify)", "vouchers/selectors.py", ("voucher_for_scan",), max),
    ("          selectors.items_available", "vouchers/selectors.py", ("items_available",), max),
    ("        services.redeem (redeem)", "vouchers/services.py", ("redeem",), max),
    ("          selectors.contract_item_for", "vouchers/selectors.py", ("contract_item_for",), max),
    ("          services._replay (idempotency check)", "vouchers/services.py", ("_replay",), max),
    ("          QuerySet.create (Redemption, ScanAttempt)", "django/db/models/query.py", ("create",), max),
    ("        tokens.parse_token (both views)", "vouchers/tokens.py", ("parse_token",), max),
    (
        "          Ed25519 signature check (offline_tokens.verify)",
        "vouchers/offline_tokens.py",
        ("verify",),
        max,
    ),
    ("        services.record_scan_attempt", "vouchers/services.py", ("record_scan_attempt",), max),
    ("        serializers: is_valid", "rest_framework/serializers.py", ("is_valid",), max),
    ("        serializers: .data", "rest_framework/serializers.py", ("data",), max),
    ("      finalize_response", "rest_framework/views.py", ("finalize_response",), max),
    (
        "    JSON rendering (Response.rendered_content)",
        "rest_framework/response.py",
        ("rendered_content",),
        max,
    ),
    (
        "  SQL round trips (psycopg2 execute)",
        "~",
        ("<method 'execute' of 'psycopg2.extensions.cursor' objects>",),
        max,
    ),
    (
        "  SQL commits (psycopg2 commit)",
        "~",
        ("<method 'commit' of 'psycopg2.extensions.connection' objects>",),
        max,
    ),
    ("  SQL compilation (compiler as_sql)", "django/db/models/sql/compiler.py", ("as_sql",), sum),
    ("  model instances (Model.__init__)", "django/db/models/base.py", ("__init__",), max),
]


def profile_parts(stats: pstats.Stats, scans: int) -> list[tuple[str, float]]:
    rows = []
    for label, path, names, combine in PROFILE_PARTS:
        total = 0.0
        for name in names:
            found = [
                ct
                for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items()
                if func == name and filename.replace("\\", "/").endswith(path)
            ]
            total += max(found, default=0.0) if combine is max else sum(found)
        rows.append((label, total / scans * 1000))
    return rows


def profile_service(plan: list, scans: int) -> None:
    """Where a service scan's time goes, calling the WSGI app in this process (no HTTP)."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection, reset_queries

    from vouchers import api

    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    application = WSGIHandler()
    scanner = InProcessScanner(application, plan[0], "svc-prof")
    for _ in range(30):
        scanner.scan()  # warm: imports, translations, the connection

    print(f"\nProfile of the service in this process (WSGI app called directly, {scans} scans, 1 thread)")
    plain = scanner.timed(scans)
    print(f"  one scan (verify + redeem), no profiler: median {plain:.2f} ms")

    # A timeline of each request, by an execute wrapper: every statement's time in the database
    # and the Python work before it (since the previous statement ended, or the request began):
    # building the query (compiling the SQL) and whatever the code did in between.
    marks: list[tuple[str, float, float]] = []

    def record(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            marks.append((sql, started, time.perf_counter()))

    timelines = {}
    with connection.execute_wrapper(record):
        for path in (VERIFY_PATH, REDEEM_PATH):
            samples = []
            for _ in range(40):
                marks.clear()
                card = scanner.cards[scanner.seq % len(scanner.cards)]
                body = {"token": card}
                if path == REDEEM_PATH:
                    body |= {
                        "service_item": BATHING["code"],
                        "quantity": "1",
                        "idempotency_key": f"svc-sql-{scanner.seq}",
                    }
                scanner.seq += 1
                began = time.perf_counter()
                status, content = wsgi_post(application, path, body, scanner.device_token)
                ended = time.perf_counter()
                if status not in (200, 201):
                    sys.exit(f"in-process POST {path} -> {status}:\n{content.decode()}")
                steps, previous = [], began
                for sql, started, finished in marks:
                    steps.append((sql, started - previous, finished - started))
                    previous = finished
                samples.append((ended - began, steps, ended - previous))
            timelines[path] = samples
    reset_queries()
    for path, samples in timelines.items():
        # The statements of the most common sequence (a minute's device touch adds one, rarely).
        usual = statistics.mode(len(steps) for _wall, steps, _tail in samples)
        samples = [s for s in samples if len(s[1]) == usual]
        wall = statistics.median(w for w, _steps, _tail in samples) * 1000
        in_db = statistics.median(sum(d for _sql, _py, d in steps) for _w, steps, _t in samples) * 1000
        print(
            f"  {path}: {wall:.2f} ms a request (median of {len(samples)}), {usual} SQL statements, "
            f"{in_db:.2f} ms in cursor.execute, so about {wall - in_db:.1f} ms of Python:"
        )
        print("      Python before | in the database | statement")
        for k in range(usual):
            py = statistics.median(steps[k][1] for _w, steps, _t in samples) * 1000
            db = statistics.median(steps[k][2] for _w, steps, _t in samples) * 1000
            print(f"      {py:8.2f} ms   | {db:8.2f} ms     | {' '.join(samples[0][1][k][0].split())[:110]}")
        tail = statistics.median(t for _w, _steps, t in samples) * 1000
        print(
            f"      {tail:8.2f} ms   | (commit, serializing and rendering the answer, the middleware on the way out)"
        )

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(scans):
        scanner.scan()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = profile_parts(stats, scans)[0][1]
    print(f"  cProfile (inflates Python work; shares of {total:.2f} ms per scan under the profiler):")
    for label, ms in profile_parts(stats, scans):
        print(f"    {label:60s} {ms:7.2f} ms  {ms / total:6.1%}")
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    print("  top 15 functions by own time:")
    for line in text.getvalue().splitlines():
        if line.strip() and ("{" in line or "/" in line or "ncalls" in line):
            print("    " + line.rstrip()[:170])

    # Ablations, in this process only (the app is unchanged): what each part costs, alternated.
    print(
        "  what switching a part off saves, in this process only (median ms per scan; the saving is the median of 12 paired batches, no profiler):"
    )
    api_middleware = [
        "django.middleware.security.SecurityMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.common.CommonMiddleware",
    ]

    @contextlib.contextmanager
    def middleware_for_api():
        saved = settings.MIDDLEWARE
        settings.MIDDLEWARE = api_middleware
        scanner.application = WSGIHandler()
        try:
            yield
        finally:
            settings.MIDDLEWARE = saved
            scanner.application = application

    @contextlib.contextmanager
    def patched(*targets):
        """Set (object, attribute, value) for the block; attributes the code no longer has are skipped."""
        saved = [(obj, name, getattr(obj, name)) for obj, name, _value in targets if hasattr(obj, name)]
        for obj, name, value in targets:
            if hasattr(obj, name):
                setattr(obj, name, value)
        try:
            yield
        finally:
            for obj, name, value in saved:
                setattr(obj, name, value)

    def no_op(**_kwargs):
        return None

    ablations = [
        ("middleware cut to Security, Locale, Common", middleware_for_api),
        ("no scan throttle (no Redis round trips)", lambda: patched((api.ScanView, "throttle_classes", []))),
        (
            "no ScanAttempt rows (services.record_scan_attempt, _attempt)",
            lambda: patched((api.services, "record_scan_attempt", no_op), (api.services, "_attempt", no_op)),
        ),
    ]
    # Short batches in pairs, the order alternating, and the median of the pairs' differences:
    # on a shared machine the load drifts within seconds, and a pair sees nearly the same load.
    rounds, n = 12, max(10, scans // 20)
    for label, switch in ablations:
        base, cut, saved = [], [], []
        for r in range(rounds):
            pair = {}
            for variant in ("base", "cut") if r % 2 == 0 else ("cut", "base"):
                if variant == "base":
                    pair[variant] = scanner.timed(n)
                else:
                    with switch():
                        pair[variant] = scanner.timed(n)
            base.append(pair["base"])
            cut.append(pair["cut"])
            saved.append(pair["base"] - pair["cut"])
        b, c, d = statistics.median(base), statistics.median(cut), statistics.median(saved)
        print(f"    {label:60s} {b:6.2f} -> {c:6.2f} ms  (saves {d:5.2f} ms, {d / b:5.1%})")


# ---------------------------------------------------------------- main


def _interrupted(_signum, _frame):
    raise KeyboardInterrupt


def main() -> None:
    args = parse_args()
    url = database_url("bench/redeem_http.py")
    config = server_config(url, why="bench/redeem_http.py measures row locks and transactions on PostgreSQL")
    if config["NAME"] == args.db_name:
        sys.exit(f"DATABASE_URL names {args.db_name}, the database this script drops; use another one.")
    # Ctrl-C raises KeyboardInterrupt; a SIGTERM too, so that the servers and the database go.
    signal.signal(signal.SIGTERM, _interrupted)

    recreate_database(config, args.db_name, create=True)
    try:
        measure(args, config, url)
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        recreate_database(config, args.db_name, create=False)


def measure(args, config: dict, url: str) -> None:
    # The service's settings, production-like; set before Django starts so that this process
    # (fixtures, profile) and gunicorn share them, the voucher signing key included.
    os.environ["REDIS_URL"] = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    import redis

    try:
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        sys.exit(
            f"Redis at REDIS_URL={os.environ['REDIS_URL']} does not answer ({error}); the service's cache needs it."
        )
    os.environ["CACHE_KEY_PREFIX"] = f"bench-http-{secrets.token_hex(4)}"
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["THROTTLE_SCAN"] = THROTTLE_SCAN
    os.environ["CONN_MAX_AGE"] = "600"
    os.environ["LOG_LEVEL"] = "WARNING"
    setup_django(url, args.db_name)  # DEBUG=0, throwaway SECRET_KEY and signing key
    import django
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    fixtures, plan = build_scanners(args)
    bare_env = dict(os.environ, BENCH_BARE_CONFIG=bare_config(config, args.db_name, fixtures))
    connections.close_all()

    (server_version,) = show(config, args.db_name, "server_version")

    workers = (
        f"gunicorn --workers {args.workers} --worker-class gthread --threads {args.threads} --keep-alive 10"
    )
    print(
        f"PostgreSQL {server_version}, Python {platform.python_version()}, Django {django.get_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"both apps: {workers}; client: {args.client_processes} processes of threads, one keep-alive connection each"
    )
    print(
        f"service: config.wsgi, DEBUG=0, CONN_MAX_AGE=600, Redis cache, THROTTLE_SCAN={THROTTLE_SCAN} "
        "(no scan is throttled, but every request still goes through the throttle)"
    )
    vouchers = (
        f"all scanners share {args.shared_vouchers} vouchers"
        if args.shared_vouchers
        else f"{args.vouchers_per_scanner} vouchers per scanner, in turn"
    )
    print(
        f"a scan: POST {VERIFY_PATH} then POST {REDEEM_PATH} (one visit of {BATHING['code']}, "
        f"¥{UNIT_PRICE}, subsidized: senior share 0); {vouchers}; {args.seconds:g} s per run, "
        f"{args.repeats} runs of each kind per scanner count"
    )

    results, service_created = run_all(args, plan, bare_env)
    summarise(args, results)
    with contextlib.closing(connect(config, args.db_name)) as conn:
        ok = check_database(conn, service_created=service_created)
    if args.profile:
        profile_service(plan, args.profile)
    if not ok:
        sys.exit(1)


def run_all(args, plan: list, bare_env: dict) -> tuple[dict, int]:
    """Both servers up, the warm-up, then the alternating runs; the figures of each run by
    (scanners, kind), and how many redemptions the service said it created."""
    log_dir = tempfile.mkdtemp(prefix="bench-http-")
    servers = {}
    # Spawned, not forked: the client processes carry nothing of Django or its connections.
    pool = multiprocessing.get_context("spawn").Pool(args.client_processes)
    service_created, results = 0, {}
    try:
        servers["service"] = Server(
            kind="service",
            app="config.wsgi:application",
            port=free_port(),
            env=dict(os.environ),
            args=args,
            log_dir=log_dir,
        )
        servers["bare"] = Server(
            kind="bare",
            app="bench.bare_wsgi:application",
            port=free_port(),
            env=bare_env,
            args=args,
            log_dir=log_dir,
        )
        for server in servers.values():
            server.wait_ready()
        most = max(args.scanner_counts)
        if args.warmup:
            for kind in ("service", "bare"):
                figures = run_load(
                    pool,
                    servers[kind],
                    plan,
                    args,
                    scanners=most,
                    seconds=args.warmup,
                    label=f"{KEY_PREFIX[kind]}-warm",
                )
                if kind == "service":
                    service_created += figures["scans"]
                print(f"  warm-up {kind:8s} {most:3d} scanners {describe(figures)}")

        for scanners in args.scanner_counts:
            for r in range(args.repeats):
                # Alternate the order so that drift (growing tables, a busy machine) hits both alike.
                for kind in ("service", "bare") if r % 2 == 0 else ("bare", "service"):
                    figures = run_load(
                        pool,
                        servers[kind],
                        plan,
                        args,
                        scanners=scanners,
                        seconds=args.seconds,
                        label=f"{KEY_PREFIX[kind]}-n{scanners}-r{r}",
                    )
                    if kind == "service":
                        service_created += figures["scans"]
                    results.setdefault((scanners, kind), []).append(figures)
                    late = (
                        f"  (a scanner started {figures['late']:.0f} ms late)" if figures["late"] > 50 else ""
                    )
                    print(
                        f"  {scanners:3d} scanners run {r + 1}/{args.repeats} {kind:8s} {describe(figures)}{late}"
                    )
    finally:
        try:
            pool.terminate()  # the clients first, at once, even with a run in flight (Ctrl-C)
            pool.join()
        finally:
            for server in servers.values():
                server.stop()
            shutil.rmtree(log_dir, ignore_errors=True)  # their logs (a failure has printed its tail)
    return results, service_created


def summarise(args, results: dict) -> None:
    def median(scanners, kind, key):
        return statistics.median(f[key] for f in results[(scanners, kind)])

    print(
        f"\nmedians of {args.repeats} runs (p50/p99: the median of the runs' percentiles of one scan, verify + redeem)"
    )
    print(
        "| scanners | service scans/s | service p50 ms | service p99 ms | bare scans/s | bare p50 ms | bare p99 ms | service / bare |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.scanner_counts:
        s, b = median(n, "service", "rate"), median(n, "bare", "rate")
        print(
            f"| {n} | {s:.1f} | {median(n, 'service', 'p50'):.1f} | {median(n, 'service', 'p99'):.1f} | "
            f"{b:.1f} | {median(n, 'bare', 'p50'):.1f} | {median(n, 'bare', 'p99'):.1f} | {s / b:.2f} |"
        )
    print(
        "CPU per scan (median): "
        + "; ".join(
            f"{n} scanners: service app {median(n, 'service', 'app_ms'):.1f} + PostgreSQL {median(n, 'service', 'db_ms'):.1f} ms, "
            f"bare app {median(n, 'bare', 'app_ms'):.1f} + PostgreSQL {median(n, 'bare', 'db_ms'):.1f} ms"
            for n in args.scanner_counts
        )
    )
    if 16 in args.scanner_counts:
        ratio = median(16, "service", "rate") / median(16, "bare", "rate")
        p99 = median(16, "service", "p99")
        print(
            f"target at 16 scanners: service / bare {ratio:.2f} (at least 0.40: {'met' if ratio >= 0.40 else 'missed'}), "
            f"service p99 {p99:.1f} ms (at most 150 ms: {'met' if p99 <= 150 else 'missed'})"
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("bench/redeem_http.py: interrupted; the servers are stopped and the database dropped.")
