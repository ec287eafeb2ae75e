"""The Telegram channel (user accounts over MTProto): replies go out through the account's
live client, held by one worker (telegram/listener.py)."""

from dataclasses import dataclass

from messaging.channels import (
    Capabilities,
    Channel,
    OutboundMessage,
    OutboundReaction,
    SendReceipt,
    register,
)

from ..models import TelegramAccount
from . import PLATFORM
from .listener import react_through_listener, send_through_listener


@dataclass(frozen=True)
class TelegramRoute:
    account_id: int
    peer_id: str  # the client's Telegram user id


class TelegramChannel(Channel):
    platform = PLATFORM
    label = "Telegram"
    capabilities = Capabilities(max_text_length=4096, attachments=True, reactions=True, edits=True)
    source_model = TelegramAccount

    def route(self, source: TelegramAccount, *, conversation=None, message=None):
        peer = conversation.external_thread_id if conversation is not None else ""
        return TelegramRoute(source.pk, peer)

    def send(self, message: OutboundMessage) -> SendReceipt:
        route = message.route
        return send_through_listener(route.account_id, message.key, route.peer_id, message.body)

    def react(self, reaction: OutboundReaction) -> None:
        route = reaction.route
        react_through_listener(
            route.account_id, route.peer_id, reaction.target_external_id, reaction.emoji
        )


CHANNEL = register(TelegramChannel())
