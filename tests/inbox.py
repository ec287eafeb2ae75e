"""The webhook inbox in tests: a webhook only stores its delivery; `drain()` runs the worker's
drain (webhook_inbox.services.drain, the same code) synchronously, here, and returns what the
drained deliveries produced (stored, duplicates, statuses, reactions, ...)."""

from webhook_inbox import services


def drain() -> dict:
    return dict(services.drain())


def posted_and_drained(response):
    """A webhook answer with `ingested` (what draining the inbox right after it produced)."""
    response.ingested = drain() if response.status_code == 200 else {}
    for name in ("stored", "duplicates", "statuses", "reactions", "edits", "deletions"):
        response.ingested.setdefault(name, 0)
    return response
