"""Logging filter and formatter that keep ID-card numbers (身份证号) and the voucher codes of
senior-page URLs (the code is the key to that page) out of every log line."""

import logging
import re

# 18-character resident ID numbers (17 digits and a digit or X), not inside a longer number.
ID_CARD_PATTERN = re.compile(r"(?<![0-9])[1-9][0-9]{13}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


# The senior's page, /v/<code>/ (and its dispute URL): the code opens the page without sign-in.
VOUCHER_PAGE_PATTERN = re.compile(r"/v/[^/\s\"'?#]+")


def redact_id_card_numbers(text: str) -> str:
    # Only the last four characters stay, as on a masked receipt; a voucher page's code goes.
    return VOUCHER_PAGE_PATTERN.sub("/v/…", ID_CARD_PATTERN.sub(r"**************\1", text))


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
