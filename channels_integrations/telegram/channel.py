"""The Telegram channel (user accounts over MTProto): replies go out through the account's
live client, held by one worker (telegram/listener.py)."""

from dataclasses import dataclass

from messaging.channels import (
    MB,
    Capabilities,
    Channel,
    FileLimit,
    OutboundMessage,
    SendReceipt,
    register,
)

from ..models import TelegramAccount
from . import PLATFORM
from .listener import send_through_listener


@dataclass(frozen=True)
class TelegramRoute:
    account_id: int
    peer_id: str  # the client's Telegram user id


class TelegramChannel(Channel):
    platform = PLATFORM
    label = "Telegram"
    # A user account may send files up to 2 GB; we keep a sane limit (files pass through our
    # storage and one worker's connection).
    capabilities = Capabilities(
        max_text_length=4096,
        attachments=True,
        file_limits=(
            FileLimit("image", 10 * MB, ("image/jpeg", "image/png", "image/webp")),
            FileLimit("document", 50 * MB),
        ),
        quotes=True,
        reactions=True,
        edits=True,
    )
    source_model = TelegramAccount

    def route(self, source: TelegramAccount, *, conversation=None, message=None):
        peer = conversation.external_thread_id if conversation is not None else ""
        return TelegramRoute(source.pk, peer)

    def send(self, message: OutboundMessage) -> SendReceipt:
        route = message.route
        return send_through_listener(
            route.account_id,
            message.key,
            route.peer_id,
            message.body,
            quoted=message.quoted,
            files=message.files,
        )


CHANNEL = register(TelegramChannel())
