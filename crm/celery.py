import gc
import logging
import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning
from celery.signals import after_setup_logger, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's routine lines: beat's "Sending due task" every few seconds, and the worker's
# "received"/"succeeded" for every task (the periodic dispatchers included). They are DEBUG
# detail: at INFO they pushed everything else out of sight. Failures still log (ERROR).
ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")

# Development runs as root in containers often; Celery then warns "running the worker with
# superuser privileges" on every start. We accept JSON only (no pickle), which is what makes
# root dangerous for Celery, and production runs under its own user (deploy/systemd), so the
# warning is silenced in development only.
if os.environ.get("DEBUG", "true").lower() in {"1", "true", "yes", "on"}:
    warnings.filterwarnings("ignore", category=SecurityWarning)


@after_setup_logger.connect
def _routine_lines_at_debug(loglevel=None, **kwargs) -> None:
    if loglevel is None or loglevel > logging.DEBUG:
        for name in ROUTINE_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect
def _fewer_full_collections(**kwargs) -> None:
    """The worker collects its young objects every WORKER_GC_THRESHOLD allocations instead of
    Python's 700 (crm.settings says why); a prefork pool's processes inherit it at fork."""
    from django.conf import settings

    gc.set_threshold(settings.WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])


def task(name: str):
    """A registered task by its name. Modules that queue a task look it up here instead of
    importing the tasks module, which imports them back (no import cycle); every app's
    `ready()` imports its tasks module, so the name is registered in every process."""
    return app.tasks[name]
