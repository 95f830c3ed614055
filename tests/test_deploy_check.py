"""`manage.py check --deploy` is clean with the README's production settings (issue 11)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The production example of the README (Production shape), with throwaway secrets.
PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "k" * 20 + "-production-example-only-9f8e7d6c5b4a3210zyxwvu",
    "ALLOWED_HOSTS": "care.example.gov.cn",
    "CSRF_TRUSTED_ORIGINS": "https://care.example.gov.cn",
    "PUBLIC_BASE_URL": "https://care.example.gov.cn",
    "SECURE_SSL_REDIRECT": "1",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "SECURE_HSTS_PRELOAD": "1",
    "NUM_PROXIES": "1",
}


def run_check(extra: dict) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION}
    env.pop("SECURE_COOKIES", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the browser tests' own, never a deployment's
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", **extra)
    env.setdefault("VOUCHER_SIGNING_KEY", os.environ["VOUCHER_SIGNING_KEY"])  # set by settings_test
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_settings():
    result = run_check({})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_without_hsts_and_the_redirect_check_deploy_says_so():
    result = run_check({"SECURE_HSTS_SECONDS": "0", "SECURE_SSL_REDIRECT": "0"})
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout
    assert "security.W008" in result.stderr + result.stdout


def test_the_silenced_csrf_check_is_djangos_middleware_under_another_name():
    from django.conf import settings
    from django.middleware.csrf import CsrfViewMiddleware
    from django.utils.module_loading import import_string

    assert settings.SILENCED_SYSTEM_CHECKS == ["security.W003"]
    ours = [import_string(path) for path in settings.MIDDLEWARE if path.endswith("CsrfViewMiddleware")]
    assert len(ours) == 1 and issubclass(ours[0], CsrfViewMiddleware)
