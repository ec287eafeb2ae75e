"""A new client's first message on a channel with automatic deals opens a deal."""

import logging
import time

from django.core.cache import cache
from django.dispatch import receiver

from messaging.signals import inbound_message_stored

logger = logging.getLogger(__name__)

CACHE_KEY = "deals:auto-deal-companies"


# This process's copy of the shared answer, for LOCAL_SECONDS: the receiver asks for every
# inbound message, and a webhook batch stores hundreds (one Redis round trip each otherwise).
# A change clears it here at once; other processes see it within LOCAL_SECONDS.
LOCAL_SECONDS = 2.0
_local: dict = {"until": 0.0, "companies": frozenset()}


def _auto_deal_companies() -> frozenset:
    now = time.monotonic()
    if _local["until"] > now:
        return _local["companies"]
    companies = cache.get(CACHE_KEY)
    if companies is None:
        from .models import ChannelDealSetting

        companies = frozenset(ChannelDealSetting.objects.values_list("company_id", flat=True))
        cache.set(CACHE_KEY, companies, 300)
    _local.update(until=now + LOCAL_SECONDS, companies=companies)
    return companies


def forget_auto_deal_companies() -> None:
    _local["until"] = 0.0
    cache.delete(CACHE_KEY)


@receiver(inbound_message_stored, dispatch_uid="deals.open_deal_for_new_client")
def open_deal_for_new_client(sender, conversation_id, company_id, **kwargs):
    try:
        if company_id not in _auto_deal_companies():
            return
        from .services import open_deal_for_new_client as open_deal

        open_deal(conversation_id)
    except Exception:  # the message is stored; a failing deal must not fail its ingestion
        logger.exception("deals: could not open a deal for conversation=%s", conversation_id)
