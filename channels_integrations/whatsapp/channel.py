"""The WhatsApp channel: what it can do, how it addresses a client, and its sender — the Cloud
API for `cloud` numbers, the number's live QR-linked session for `web` ones."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from messaging import sending
from messaging.channels import (
    MB,
    Capabilities,
    Channel,
    DownloadError,
    FileLimit,
    MediaToFetch,
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


# The document types Meta documents for the Cloud API (QR-linked numbers take the same).
DOCUMENT_TYPES = (
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
)


class WhatsAppChannel(Channel):
    platform = PLATFORM
    label = "WhatsApp"
    capabilities = Capabilities(
        max_text_length=4096,
        attachments=True,
        file_limits=(
            FileLimit("image", 5 * MB, ("image/jpeg", "image/png")),
            FileLimit("video", 16 * MB, ("video/mp4", "video/3gpp")),
            FileLimit(
                "audio",
                16 * MB,
                ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"),
            ),
            FileLimit("document", 100 * MB, DOCUMENT_TYPES),
        ),
        max_files=10,
        quotes=True,
        reactions=True,
        templates=True,
        reply_window=timedelta(hours=24),
    )
    source_model = WhatsAppNumber
    reply_window_fields = ("provider",)

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

    def _send_cloud_files(self, route, message: OutboundMessage) -> SendReceipt:
        """Each file uploaded to the Graph media endpoint, then sent as its own message (the
        text as the first file's caption, or first on its own when that file takes none);
        each part once (its record), the first quoting. The message's id is the first's."""
        to, quoted = message.to_address, message.quoted
        parts = []
        caption = message.body
        if caption and message.files[0].kind not in cloud.CAPTIONED:
            parts.append(lambda q, text=caption: cloud.send_text(route, to, text, quoted_wamid=q))
            caption = ""
        for index, file in enumerate(message.files):
            parts.append(
                lambda q, file=file, text=(caption if index == 0 else ""): cloud.send_media(
                    route, to, file, cloud.upload_media(route, file), caption=text, quoted_wamid=q
                )
            )
        return SendReceipt(external_id=sending.send_parts(message.key, parts, quoted))

    def fetches_media(self, source: WhatsAppNumber) -> bool:
        return True

    def fetch_media(self, source: WhatsAppNumber, media: MediaToFetch, destination) -> str:
        if source.provider != WhatsAppNumber.Provider.CLOUD:
            if media.size is not None and media.size > media.max_bytes:
                raise DownloadError.too_large(media.size, media.max_bytes)
            return sessions.download_through_session(
                source.pk, media.ref or {}, media.max_bytes, destination
            )
        if not source.cloud_access_token:
            raise DownloadError("This number has no Cloud API access token.")
        credentials = cloud.CloudCredentials(
            source.cloud_phone_number_id, source.cloud_access_token
        )
        return cloud.fetch_media(credentials, media, destination)

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
                elif message.files:
                    receipt = self._send_cloud_files(route, message)
                else:
                    receipt = cloud.send_text(
                        route, message.to_address, message.body, quoted_wamid=message.quoted
                    )
            elif message.template is not None:
                raise SendError("Only Cloud API numbers send message templates.")
            else:
                receipt = sessions.send_through_session(
                    route.number_id,
                    message.key,
                    message.to_address,
                    message.body,
                    quoted=message.quoted,
                    files=message.files,
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
