import logging

from celery import shared_task

from .services import NumberDeletionFailed, run_number_deletion

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def delete_number_in_background(number_id: int, actor_id: int | None = None) -> None:
    """The same transactional delete as the immediate path, for numbers with a long history."""
    try:
        run_number_deletion(number_id, actor_id=actor_id)
    except NumberDeletionFailed:
        pass  # recorded on the number and published; nothing was deleted
