"""Settings read from the environment, and logs that never carry an ID-card number (§6.6)."""

import copy
import io
import logging
import logging.config
import os
import subprocess
import sys

import pytest
from django.conf import settings

from config.logging import RedactIdCardNumbers, redact_id_card_numbers
from tests.factories import make_id_card_number

ID_NUMBER = make_id_card_number(serial=7)


def test_an_id_card_number_is_masked_to_its_last_four_characters():
    # given a message that carries an 18-character resident ID
    message = f"registered senior {ID_NUMBER} in 保俶社区"

    # when it is redacted
    redacted = redact_id_card_numbers(message)

    # then only the last four characters of the number are left
    assert ID_NUMBER not in redacted
    assert redacted == f"registered senior **************{ID_NUMBER[-4:]} in 保俶社区"


@pytest.mark.parametrize(
    "template",
    [
        "id={}abc",  # followed by letters
        '{{"id_card_number": "{}"}}',  # in JSON
        "q={}&page=2",  # a query string
        "senior:{}:refused",
        "身份证号{}已登记",
    ],
)
def test_a_number_is_masked_wherever_it_stands(template):
    redacted = redact_id_card_numbers(template.format(ID_NUMBER))
    assert ID_NUMBER not in redacted and ID_NUMBER[:14] not in redacted
    assert ID_NUMBER[-4:] in redacted


def test_a_url_encoded_number_is_masked():
    encoded = "".join(f"%3{digit}" for digit in ID_NUMBER[:17]) + ID_NUMBER[17]
    redacted = redact_id_card_numbers(f"GET /admin/?q={encoded} 200")
    assert ID_NUMBER[:14] not in redacted and "%31%31" not in redacted.replace("%3", "")
    assert "**************" in redacted


@pytest.mark.parametrize("phone", ["13912345678", "+8613912345678", "tel:18600001111;"])
def test_a_mobile_phone_is_masked_to_its_first_three_and_last_four(phone):
    redacted = redact_id_card_numbers(f"callback {phone} noted")
    digits = phone[-11:] if phone[-1].isdigit() else phone[4:15]
    assert digits not in redacted
    assert f"{digits[:3]}****{digits[-4:]}" in redacted


def test_an_id_ending_in_x_is_masked_too():
    number = "11010519491231002X"
    assert redact_id_card_numbers(f"id={number}") == "id=**************002X"


@pytest.mark.parametrize(
    "text",
    [
        "landline 057187654321",  # 12 digits, not a mobile
        "old 15-digit ID 330106450301001",
        "17 digits 33010619450301001",
        "a 19-digit bank card 6222021234567890123",
        "a 20-digit number 33010619450301001234",
        "amount 300.00 CNY, voucher 12",
    ],
)
def test_shorter_numbers_and_longer_digit_runs_are_left_alone(text):
    assert redact_id_card_numbers(text) == text


def test_a_real_logger_never_writes_the_number():
    # given a logger whose handler carries the filter, as in settings.LOGGING
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactIdCardNumbers())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        # when the number arrives both in the message and as a %-argument
        logger.info("senior %s refused", ID_NUMBER)
        logger.warning(f"duplicate {ID_NUMBER}")
    finally:
        logger.removeHandler(handler)

    # then the written log has no number, only masked ones
    written = stream.getvalue()
    assert ID_NUMBER not in written
    assert written.splitlines() == [
        f"INFO senior **************{ID_NUMBER[-4:]} refused",
        f"WARNING duplicate **************{ID_NUMBER[-4:]}",
    ]


def test_the_configured_console_handler_redacts_messages_and_tracebacks():
    """The LOGGING of config.settings, as configured: a database error quoting the number in its
    traceback (a duplicate key) must not reach the log in clear."""
    number = "330106195001010028"
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        try:
            raise RuntimeError(f"duplicate key value: Key (id_card_number)=({number}) already exists.")
        except RuntimeError:
            logging.getLogger("homecare.configured_logging").exception("registering %s failed", number)
    finally:
        logging.config.dictConfig(settings.LOGGING)
    written = stream.getvalue()
    assert "Traceback" in written and "already exists" in written
    assert number not in written
    assert written.count("**************0028") == 2


def test_a_senior_page_request_logged_as_not_found_keeps_its_code_out(client, db, caplog):
    """The code in /v/<code>/ opens a senior's page: Django's request log (a 404, a 410) must not
    write it down, as the configured formatter writes the line."""
    code = "A" * 120
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    try:
        assert client.get(f"/v/{code}/").status_code == 404
        assert client.post(f"/v/{code}/dispute/", {"service": "1"}).status_code in (403, 404)
    finally:
        logging.config.dictConfig(settings.LOGGING)
    written = stream.getvalue()
    assert "/v/…" in written
    assert code not in written


def _import_settings(**env_vars) -> subprocess.CompletedProcess:
    """Import config.settings in a fresh interpreter whose environment holds only `env_vars`."""
    env = {"PATH": os.environ.get("PATH", ""), **env_vars}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings as s; print(s.DEBUG)"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def no_local_env_file():
    if (settings.BASE_DIR / ".env").exists():
        pytest.skip("a local .env file may set SECRET_KEY or DEBUG for the subprocess")


def test_settings_refuse_to_start_without_a_secret_key_unless_debug(no_local_env_file):
    # when the settings are imported with neither SECRET_KEY nor DEBUG
    refused = _import_settings()
    # then they refuse, saying what is missing
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert "SECRET_KEY must be set" in refused.stderr

    # and without a voucher signing key: printed cards must not be signed by a guessable key
    keyless = _import_settings(SECRET_KEY="a-key-for-this-test-only")
    assert keyless.returncode != 0
    assert "VOUCHER_SIGNING_KEY or VOUCHER_SIGNING_KEY_FILE must be set" in keyless.stderr

    # while with DEBUG=1, or with both keys, they load
    assert _import_settings(DEBUG="1").stdout.strip() == "True"
    signing_key = os.environ["VOUCHER_SIGNING_KEY"]  # the test run's own (config.settings_test)
    keyed = _import_settings(SECRET_KEY="a-key-for-this-test-only", VOUCHER_SIGNING_KEY=signing_key)
    assert keyed.stdout.strip() == "False"


def test_shanghai_time_and_chinese_first():
    assert settings.TIME_ZONE == "Asia/Shanghai"
    assert settings.USE_TZ is True
    assert settings.LANGUAGE_CODE == "zh-hans"
    assert [code for code, _name in settings.LANGUAGES] == ["zh-hans", "en"]
