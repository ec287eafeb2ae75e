"""The Telegram channel (user accounts over MTProto): replies go out through the account's
live client, held by one worker (telegram/listener.py)."""

from dataclasses import dataclass

from messaging.channels import (
    MB,
    Capabilities,
    Channel,
    DownloadError,
    FileLimit,
    MediaToFetch,
    OutboundMessage,
    OutboundReaction,
    SendReceipt,
    register,
)

from ..models import TelegramAccount
from . import PLATFORM
from .listener import download_through_listener, react_through_listener, send_through_listener


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

    def react(self, reaction: OutboundReaction) -> None:
        route = reaction.route
        react_through_listener(
            route.account_id, route.peer_id, reaction.target_external_id, reaction.emoji
        )

    def fetches_media(self, source: TelegramAccount) -> bool:
        return True

    def fetch_media(self, source: TelegramAccount, media: MediaToFetch, destination) -> str:
        """Through the account's live client (the worker holding it downloads into our
        storage's spool folder); the file is then copied into `destination` in chunks."""
        if media.size is not None and media.size > media.max_bytes:
            raise DownloadError.too_large(media.size, media.max_bytes)
        if not media.external_id.isdigit() or not media.thread_id.lstrip("-").isdigit():
            raise DownloadError("This Telegram file has no message to download it from.")
        return download_through_listener(
            source.pk, int(media.thread_id), int(media.external_id), media.max_bytes, destination
        )


CHANNEL = register(TelegramChannel())
