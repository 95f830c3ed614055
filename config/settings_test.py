"""Settings for the test suite: the same as production, with a throwaway key."""

import base64
import os
import tempfile

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")
# A fresh voucher signing key for each test run: nothing of it is in the repository.
_test_key = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
os.environ.setdefault("VOUCHER_SIGNING_KEY", base64.b64encode(_test_key).decode())
os.environ.setdefault("SECURE_COOKIES", "0")
# Settlement workbooks of the tests go to a folder of their own, not the project's var/.
os.environ.setdefault("EXPORT_ROOT", tempfile.mkdtemp(prefix="homecare-test-exports-"))

from .settings import *  # noqa: E402, F403 - the environment above must be set first

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {  # noqa: F405
    "auth_token": "1000/min",
    "auth_username": "1000/min",
    "scan": "10000/min",
    "scan_replay": "10000/min",
    "void": "10000/min",
}
# schemathesis calls the WSGI app as http://localhost.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "localhost"]  # noqa: F405
