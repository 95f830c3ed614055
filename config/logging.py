"""Logging filter and formatter that keep ID-card numbers (身份证号), mobile phone numbers and the
voucher codes of senior-page URLs (the code is the key to that page) out of every log line."""

import logging
import re

# 18-character resident ID numbers (17 digits and a digit or X), not inside a longer number,
# wherever they stand: followed by letters ("…1234abc"), in JSON, in a query string.
ID_CARD_PATTERN = re.compile(r"(?<![0-9])[1-9][0-9]{13}([0-9]{3}[0-9Xx])(?![0-9])")
# Mainland mobile numbers (11 digits from 13–19), also not inside a longer number; "+86" and
# "86" prefixes stand before them.
PHONE_PATTERN = re.compile(r"(?:(?<=86)|(?<![0-9]))(1[3-9][0-9])[0-9]{4}([0-9]{4})(?![0-9])")
# A percent-encoded digit or X (%31 is "1"): what a URL-encoded number is made of.
_ENCODED_DIGIT = re.compile(r"%3([0-9])|%(?:58|78)", re.IGNORECASE)
_ENCODED_RUN = re.compile(r"(?:%3[0-9]|%58|%78|[0-9Xx]){11,}", re.IGNORECASE)


def _decode_digits(match: re.Match) -> str:
    run = match.group(0)
    if "%" not in run:
        return run
    return _ENCODED_DIGIT.sub(lambda m: m.group(1) if m.group(1) is not None else "X", run)


# The senior's page, /v/<code>/ (and its dispute URL): the code opens the page without sign-in.
VOUCHER_PAGE_PATTERN = re.compile(r"/v/[^/\s\"'?#]+")


def redact_id_card_numbers(text: str) -> str:
    """ID-card numbers keep their last four characters, as on a masked receipt; phones their
    first three and last four; a voucher page's code goes. Percent-encoded digits are read as
    digits first, so an encoded number is masked too."""
    text = _ENCODED_RUN.sub(_decode_digits, text)
    text = ID_CARD_PATTERN.sub(r"**************\1", text)
    text = PHONE_PATTERN.sub(r"\1****\2", text)
    return VOUCHER_PAGE_PATTERN.sub("/v/…", text)


class RedactIdCardNumbers(logging.Filter):
    """Rewrites the record's message with ID-card numbers masked; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_id_card_numbers(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks ID-card numbers in the whole formatted record, tracebacks included.

    A database error's text can quote a unique key (`Key (id_card_number)=(…) already exists`);
    the filter only sees the message, so the formatter redacts what is finally written.
    """

    def format(self, record: logging.LogRecord) -> str:
        return redact_id_card_numbers(super().format(record))
