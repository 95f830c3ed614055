"""The scanner page, /scan/, as the server renders it: a shell that opens without sign-in, with
its texts (in the request's language) and settings as JSON data, nothing inline for a strict
Content-Security-Policy but WebAssembly for the decoder, and every script and vendored file it
names present. What it does on a phone is tests/e2e/test_scanner_browser.py."""

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse
from django.utils import translation

from vouchers.scan_views import TEXT

SCRIPTS = Path(settings.BASE_DIR) / "static" / "js" / "scan"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def json_data(html: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no #{element_id} data"
    return json.loads(match.group(1))


@pytest.fixture
def page(client, db):
    response = client.get(reverse("scan"))
    assert response.status_code == 200
    return response


def test_the_scanner_opens_without_sign_in_and_is_never_cached(page):
    assert page.templates[0].name == "scan/scanner.html"
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    assert 'id="signin-form"' in html and 'id="scan-button"' in html


def test_the_page_has_nothing_inline_but_data(page):
    html = page.content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    # The module that runs the page (a file), and two JSON blocks that are data, never run.
    assert [attrs for attrs, body in scripts if "src=" in attrs] == [
        ' type="module" src="/static/js/scan/main.js"'
    ]
    assert all('type="application/json"' in attrs for attrs, body in scripts if "src=" not in attrs)
    assert "<style" not in html and not re.search(r"\s(?:style|on[a-z]+)\s*=", html)


def test_the_policy_allows_webassembly_and_nothing_else_extra(page):
    policy = page["Content-Security-Policy"]

    assert "script-src 'self' 'wasm-unsafe-eval'" in policy
    assert "'unsafe-eval'" not in policy.replace("'wasm-unsafe-eval'", "")
    assert "'unsafe-inline'" not in policy
    assert "connect-src 'self'" in policy


def test_the_texts_come_in_chinese_by_default_and_in_english_when_asked(client, db):
    chinese = json_data(client.get(reverse("scan")).content.decode(), "scan-text")
    english = json_data(client.get(reverse("scan"), HTTP_ACCEPT_LANGUAGE="en").content.decode(), "scan-text")

    assert set(chinese) == set(english) == set(TEXT)
    assert chinese["username"] == "用户名" and english["username"] == "Username"
    assert english["error_voucher_revoked"].startswith("This voucher was stopped")


def test_every_translation_keeps_the_placeholders_the_script_fills(db):
    for key, text in TEXT.items():
        with translation.override("en"):
            english = str(text)
        with translation.override("zh-hans"):
            chinese = str(text)
        assert set(PLACEHOLDER.findall(chinese)) == set(PLACEHOLDER.findall(english)), key


def test_the_settings_name_the_api_and_files_that_exist(page):
    config = json_data(page.content.decode(), "scan-config")

    assert config["api"] == "/api/v1/"
    assert reverse("api-auth-token").startswith(config["api"])
    for name in ("decoder", "decoder_wasm", "ed25519"):
        path = config[name].removeprefix(
            settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/static/"
        )
        assert finders.find(path), config[name]
    assert config["time_zone_offset_minutes"] == 480


def test_the_vendored_libraries_come_with_their_licences():
    vendor = Path(settings.BASE_DIR) / "static" / "vendor"
    for package in ("barcode-detector", "zxing-wasm", "noble-ed25519"):
        assert "MIT License" in (vendor / package / "LICENSE").read_text(), package
    # The decoder's wasm is the one its library was built for (it checks the hash it expects).
    assert (vendor / "zxing-wasm" / "zxing_reader.wasm").stat().st_size > 500_000


def test_every_module_the_scripts_import_exists():
    for script in SCRIPTS.glob("*.js"):
        for imported in re.findall(r'^import .*?from "(\./[^"]+)";', script.read_text(), re.M | re.S):
            assert (SCRIPTS / imported).exists(), f"{script.name} imports {imported}"


def test_the_scripts_load_nothing_from_elsewhere_and_evaluate_no_text():
    for script in SCRIPTS.glob("*.js"):
        code = script.read_text()
        assert not re.search(r"https?://", code), script.name
        assert "eval(" not in code and "new Function" not in code, script.name
        assert ".innerHTML" not in code, script.name  # texts go in with textContent


def test_the_page_refuses_a_post(client, db):
    assert client.post(reverse("scan")).status_code == 405


def test_the_service_worker_keeps_the_page_and_every_file_it_loads(client, db):
    response = client.get(reverse("scan-service-worker"))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    assert reverse("scan-service-worker").startswith(reverse("scan"))  # its scope is the page's
    code = response.content.decode()
    assets = json.loads(re.search(r"^const ASSETS = (.*);$", code, re.M).group(1))
    assert json.loads(re.search(r"^const PAGE = (.*);$", code, re.M).group(1)) == reverse("scan")
    for module in SCRIPTS.glob("*.js"):
        if module.name != "sw.js":
            assert f"/static/js/scan/{module.name}" in assets
    config = json_data(client.get(reverse("scan")).content.decode(), "scan-config")
    assert {config["decoder"], config["decoder_wasm"], config["ed25519"]} <= set(assets)
    for url in assets:
        assert finders.find(url.removeprefix("/static/")), url
