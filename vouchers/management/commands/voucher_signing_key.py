"""Make a voucher signing key, or print the public key of the one in use (for a rotation)."""

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management.base import BaseCommand, CommandError

from vouchers import offline_tokens, tokens


class Command(BaseCommand):
    help = (
        "Write a new Ed25519 voucher signing key (PEM) to --out, readable by its owner only; or, "
        "with --public, print the id and public key of the key in use, as VOUCHER_PREVIOUS_KEYS "
        "wants it after a rotation."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--out", help="where to write the new private key (PEM)")
        which.add_argument("--public", action="store_true", help="print the key in use's id and public key")
        parser.add_argument(
            "--if-missing", action="store_true", help="with --out: do nothing if the file exists"
        )

    def handle(self, *args, out=None, public=False, if_missing=False, **options):
        if public:
            for key in tokens.verification_keys():
                state = "current" if key.current else f"previous, until {key.valid_until or 'replaced'}"
                self.stdout.write(f"{key.key_id}:{key.public_key_text}  ({state})")
            return
        path = Path(out)
        if path.exists():
            if if_missing:
                return
            raise CommandError(
                f"{path} exists: a signing key is never overwritten (cards signed with it would fail)."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = offline_tokens.private_key_pem(Ed25519PrivateKey.generate())
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise CommandError(f"cannot write {path}: {error.strerror}") from None
        with os.fdopen(descriptor, "w") as file:
            file.write(pem)
        self.stdout.write(f"Wrote a new voucher signing key to {path}. Keep it secret and backed up.")
