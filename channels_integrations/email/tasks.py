"""Email's Celery tasks: polls (beat dispatches them) and the IMAP IDLE listener."""

from celery import shared_task

from .imap import dispatch_polls, poll_account, poll_finished, run_idle


@shared_task(ignore_result=True)
def dispatch_email_polls() -> list:
    """Beat: queue a poll of every account that is due."""
    return dispatch_polls()


@shared_task(ignore_result=True, soft_time_limit=600)
def poll_email_account(account_id: int) -> dict:
    try:
        return poll_account(account_id)
    finally:
        poll_finished(account_id)


@shared_task(ignore_result=True)
def run_email_idle(account_id: int) -> str:
    """IMAP IDLE on one account's INBOX (the `connections` queue)."""
    return run_idle(account_id)
