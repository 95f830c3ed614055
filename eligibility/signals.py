"""Signals the eligibility app sends to the apps above it (which it must not import)."""

from django.dispatch import Signal

# Sent inside the transaction that marks a senior moved out or deceased, with `senior`, `on`
# (the date of the change) and `by`; vouchers revokes their vouchers in the same transaction.
senior_left = Signal()
