"""Signal receivers: lead distribution when ingest creates a conversation, the first
responder taking a conversation by replying, and away replies outside business hours.
Each runs after its commit and never fails the write that caused it."""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from messaging.models import Message
from messaging.signals import conversation_created, inbound_message_stored

from . import distribution, hours
from .models import Team

logger = logging.getLogger(__name__)


@receiver(conversation_created, dispatch_uid="teams.distribute_new_conversation")
def distribute_new_conversation(sender, conversation, **kwargs):
    try:
        distribution.distribute(conversation)
    except Exception:
        logger.exception("distribution: conversation=%s failed", conversation.pk)


@receiver(post_save, sender=Message, dispatch_uid="teams.first_responder")
def first_responder(sender, instance, created, **kwargs):
    if not created or instance.direction != Message.Direction.OUTBOUND or not instance.author_id:
        return
    author, conversation_id = instance.author, instance.conversation_id

    def take():
        try:
            distribution.take_on_first_reply(conversation_id, author)
        except Exception:
            logger.exception("distribution: first reply on conversation=%s", conversation_id)

    transaction.on_commit(take)


@receiver(inbound_message_stored, dispatch_uid="teams.away_reply")
def away_reply(sender, message_id, conversation_id, company_id, **kwargs):
    try:
        hours.reply_if_closed(message_id, conversation_id, company_id)
    except Exception:
        logger.exception("away reply: conversation=%s failed", conversation_id)


@receiver(post_save, sender=Team, dispatch_uid="teams.hours_changed")
def hours_changed(sender, **kwargs):
    hours.forget_hours()
    transaction.on_commit(hours.forget_hours)
