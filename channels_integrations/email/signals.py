"""Our own replies' Message-IDs are remembered, so answers to them join the conversation."""

from django.dispatch import receiver

from messaging.signals import outbound_message_sent

from . import PLATFORM
from .importer import record_sent


@receiver(outbound_message_sent)
def remember_sent_message_id(sender, platform, source_id, conversation_id, external_id, **kwargs):
    if platform == PLATFORM and external_id:
        record_sent(source_id, conversation_id, external_id)
