"""Logging filter that keeps ID-card numbers (身份证号) out of every log line."""

import logging
import re

# 18-character resident ID numbers (17 digits and a digit or X), not inside a longer number.
ID_CARD_PATTERN = re.compile(r"(?<![0-9])[1-9][0-9]{13}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")


def redact_id_card_numbers(text: str) -> str:
    # Only the last four characters stay, as on a masked receipt.
    return ID_CARD_PATTERN.sub(r"**************\1", text)


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
