"""Test settings: the real PostgreSQL and Redis, on a Redis database of their own."""

import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DEBUG", "true")
# Most tests drive the Celery `connections` path; tests/test_connection_hosts.py the hosts.
os.environ.setdefault("CONNECTION_HOSTS", "false")

from crm.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Two checkouts testing on one machine must not share a database or realtime channel.
# TEST_RUN_ID separates parallel runs in one checkout (each gets its own database).
_CHECKOUT = str(BASE_DIR)  # noqa: F405
_RUN_ID = (
    os.environ.get("TEST_RUN_ID") or __import__("hashlib").sha1(_CHECKOUT.encode()).hexdigest()[:8]
)
DATABASES["default"]["TEST"] = {"NAME": f"test_switchboard_{_RUN_ID}"}  # noqa: F405
REALTIME_CHANNEL = f"switchboard:events:test:{_RUN_ID}"
# One media folder per run, shared with the daphne and workers the tests start (they inherit
# the environment), so a file stored by the test is there for the server that serves it.
MEDIA_ROOT = os.environ.setdefault(
    "SWITCHBOARD_TEST_MEDIA_ROOT",
    __import__("tempfile").mkdtemp(prefix=f"switchboard-media-{_RUN_ID}-"),
)
CACHES["default"]["KEY_PREFIX"] = f"switchboard-test-{_RUN_ID}"  # noqa: F405
