import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")

app = Celery("crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def task(name: str):
    """A registered task by its name. Modules that queue a task look it up here instead of
    importing the tasks module, which imports them back (no import cycle); every app's
    `ready()` imports its tasks module, so the name is registered in every process."""
    return app.tasks[name]
