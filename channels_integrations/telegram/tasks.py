"""Telegram's Celery task: the account's listener (the `connections` queue)."""

from celery import shared_task

from .listener import run_listener


@shared_task(ignore_result=True)
def run_telegram_listener(account_id: int) -> str:
    """Hold one Telegram account's client until it stops (the `connections` queue)."""
    return run_listener(account_id)
