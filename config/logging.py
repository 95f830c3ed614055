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
