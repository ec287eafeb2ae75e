"""The bots' receivers, connected in ChannelsIntegrationsConfig.ready(): every inbound message
of a channel with bots (WhatsApp, the sandbox) (after commit) in a company with an active bot queues `answer_with_bots`, whose
task runs the engine (whatsapp.bots.answer_inbound); writes of bots and numbers clear this
process's memory of which companies have bots."""

import logging

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from crm.celery import task
from messaging.signals import inbound_message_stored

from ..models import Bot, WhatsAppNumber
from ..sandbox.models import SandboxInbox
from .bots import BOT_PLATFORMS, company_has_active_bots, forget_bot_companies

logger = logging.getLogger(__name__)


@receiver(inbound_message_stored, dispatch_uid="channels_integrations.bots.queue_bot_answer")
def queue_bot_answer(sender, message_id, company_id, platform, **kwargs):
    answer_with_bots = task("channels_integrations.whatsapp.tasks.answer_with_bots")

    if platform not in BOT_PLATFORMS:
        return
    try:
        if not company_has_active_bots(company_id):
            return
        answer_with_bots.delay(message_id)
    except Exception:
        # The message is stored and committed; a broker hiccup must not fail its ingestion.
        logger.exception("bots: could not queue the answer to message=%s", message_id)


@receiver(post_save, sender=Bot, dispatch_uid="channels_integrations.bots.bot_saved")
@receiver(post_delete, sender=Bot, dispatch_uid="channels_integrations.bots.bot_deleted")
@receiver(post_save, sender=WhatsAppNumber, dispatch_uid="channels_integrations.bots.number_saved")
@receiver(post_save, sender=SandboxInbox, dispatch_uid="channels_integrations.bots.sandbox_saved")
def bots_changed(sender, **kwargs):
    forget_bot_companies()
    transaction.on_commit(forget_bot_companies)  # a read racing the write's commit
