"""The Meta channels' Celery task: naming a new thread's client from their public profile."""

import logging

from celery import shared_task

from messaging.channels import get
from messaging.models import Conversation
from messaging.services import name_thread_client

from . import graph

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def look_up_client_profile(conversation_id: int) -> bool:
    """GET the writer's profile (name) with the account's page token and name the thread's
    client. Best effort: a refused or failed look-up leaves the thread as it was."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None or conversation.client_id is not None:
        return False
    account = conversation.source
    if account is None or not account.page_access_token:
        return False
    channel = get(conversation.platform)
    profile = graph.fetch_profile(
        conversation.external_thread_id,
        channel.profile_fields,
        account.page_access_token,
        account.app_secret or "",
    )
    named = name_thread_client(conversation, channel.client_name(profile))
    logger.info("meta: conversation=%s client named from profile: %s", conversation_id, named)
    return named
