"""Settings for a real Celery worker started by a test (tests/test_broadcast_resume.py).

The test settings, plus what the starting test passes in the environment: the provider classes
(MESSAGING_PROVIDERS_JSON, merged over the defaults), the queue the worker's own tasks go to
(CELERY_TASK_DEFAULT_QUEUE), and short broadcast timings. DATABASE_URL names the test database.
"""

import json
import os

from tests.settings import *  # noqa: F403

MESSAGING_PROVIDERS = {  # noqa: F405
    **MESSAGING_PROVIDERS,  # noqa: F405
    **json.loads(os.environ.get("MESSAGING_PROVIDERS_JSON") or "{}"),
}
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
for _name in ("BROADCAST_CLAIM_GRACE_SECONDS", "BROADCAST_LEASE_SECONDS"):
    if os.environ.get(_name):
        globals()[_name] = float(os.environ[_name])
