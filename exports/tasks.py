"""Export tasks. The build is acknowledged when it starts (not `acks_late`: an archive can
take longer than the broker's visibility timeout, and a redelivery would build it twice); a
build lost with its worker is failed in words by the sweeper, from its stale heartbeat."""

from celery import shared_task


@shared_task(ignore_result=True)
def build_export(job_id: int) -> str | None:
    from .archive import build_export as build

    return build(job_id)


@shared_task(ignore_result=True)
def sweep_exports() -> dict:
    """Beat: stale builds failed, lost ones queued again, expired archives deleted."""
    from .services import sweep_exports as sweep

    return sweep()
