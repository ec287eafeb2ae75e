"""The WhatsApp channel: what it can do, how it addresses a client, and its sender — the Cloud
API for `cloud` numbers, the number's live QR-linked session for `web` ones."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from messaging.channels import (
    Capabilities,
    Channel,
    OutboundMessage,
    OutboundReaction,
    SendError,
    SendReceipt,
    register,
)

from ..models import WhatsAppNumber
from . import PLATFORM, cloud, metrics, sessions
from . import templates as templates_module

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionRoute:
    """A QR-linked number: sends go to the worker holding its session."""

    number_id: int


class WhatsAppChannel(Channel):
    platform = PLATFORM
    label = "WhatsApp"
    capabilities = Capabilities(
        max_text_length=4096,
        attachments=True,
        reactions=True,
        templates=True,
        reply_window=timedelta(hours=24),
    )
    source_model = WhatsAppNumber

    def client_address(self, conversation) -> str:
        client = conversation.client
        return str(client.phone) if client and client.phone else conversation.external_thread_id

    def route(self, source: WhatsAppNumber, *, conversation=None, message=None):
        if source.provider == WhatsAppNumber.Provider.CLOUD:
            return cloud.CloudCredentials(source.cloud_phone_number_id, source.cloud_access_token)
        return SessionRoute(source.pk)

    def reply_window(self, source: WhatsAppNumber):
        """Cloud numbers have Meta's 24-hour customer-service window; QR-linked ones none."""
        if source is not None and source.provider == WhatsAppNumber.Provider.CLOUD:
            return self.capabilities.reply_window
        return None

    def template_options(self, source: WhatsAppNumber):
        if source is None or source.provider != WhatsAppNumber.Provider.CLOUD:
            return []
        return [templates_module.option(t) for t in templates_module.offered_templates(source)]

    def resolve_template(self, source: WhatsAppNumber, name, language, variables):
        if source is None or source.provider != WhatsAppNumber.Provider.CLOUD:
            return super().resolve_template(source, name, language, variables)
        return templates_module.resolve(source, name, language, variables)

    def is_live(self, source: WhatsAppNumber) -> bool:
        return source.is_active and source.status != WhatsAppNumber.Status.DELETING

    def send(self, message: OutboundMessage) -> SendReceipt:
        route = message.route
        try:
            if isinstance(route, cloud.CloudCredentials):
                if not route.phone_number_id or not route.access_token:
                    raise SendError(
                        "This number has no Cloud API phone number id or access token yet."
                    )
                if message.template is not None:
                    receipt = cloud.send_template(route, message.to_address, message.template)
                else:
                    receipt = cloud.send_text(
                        route, message.to_address, message.body, quoted_wamid=message.quoted
                    )
            elif message.template is not None:
                raise SendError("Only Cloud API numbers send message templates.")
            else:
                receipt = sessions.send_through_session(
                    route.number_id, message.key, message.to_address, message.body
                )
        except SendError as exc:
            metrics.record_error(exc.reason, message.company_id)
            raise
        metrics.increment("messages_sent", message.company_id)
        logger.info("whatsapp: sent %s number=%s", message.key, message.source_id)
        return receipt

    def react(self, reaction: OutboundReaction) -> None:
        route = reaction.route
        if not isinstance(route, cloud.CloudCredentials):
            sessions.react_through_session(
                route.number_id, reaction.to_address, reaction.target_external_id, reaction.emoji
            )
            return
        if not route.phone_number_id or not route.access_token:
            raise SendError("This number has no Cloud API phone number id or access token yet.")
        cloud.send_reaction(route, reaction.to_address, reaction.target_external_id, reaction.emoji)


CHANNEL = register(WhatsAppChannel())
