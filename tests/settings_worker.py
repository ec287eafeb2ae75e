"""Settings for a real Celery worker started by a test.

The test settings, plus what the starting test passes in the environment: the queue the
worker's own tasks go to (CELERY_TASK_DEFAULT_QUEUE) and short timings (any setting crm.settings
reads from the environment, e.g. SEND_CLAIM_STALE_SECONDS, WHATSAPP_GRAPH_URL).
DATABASE_URL names the test database.
"""

import os

from tests.settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")
