"""Tasks every channel shares: the connections' supervisor and the worker's shutdown.
Each channel's own tasks live in its folder (whatsapp/tasks.py, telegram/tasks.py,
email/tasks.py)."""

from celery import shared_task
from celery.signals import worker_shutting_down


@shared_task(ignore_result=True)
def supervise_connections() -> dict:
    """Beat: WhatsApp sessions and Telegram listeners that should run and do not are started;
    live ones are health-checked."""
    from . import fleet
    from .email.imap import supervise_idle
    from .telegram.listener import supervise as supervise_telegram
    from .whatsapp.sessions import health_check as health_whatsapp
    from .whatsapp.sessions import supervise as supervise_whatsapp

    if fleet.enabled():  # connection hosts: assign every wanted connection to one with room
        return {"fleet": fleet.supervise(), "whatsapp_health": health_whatsapp()}
    return {
        "whatsapp": supervise_whatsapp(),
        "telegram": supervise_telegram(),
        "email_idle": supervise_idle(),
    }


@worker_shutting_down.connect
def _close_connections_on_shutdown(**kwargs):
    """SIGTERM: every connection of this worker closes and releases its lease (threads pool)."""
    from .connections import SHUTDOWN

    SHUTDOWN.set()
