"""The two Meta channels: Messenger (a Facebook Page's conversations) and Instagram Direct.
Replies go out through the Send API with the channel's rules: inside 24 hours of the client's
last message a standard RESPONSE; up to 7 days with the HUMAN_AGENT tag where the account may
use it; beyond that a reply is refused when written (a 400 naming `body`, nothing queued) and,
if the window closed while it waited, when sent."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

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
    SendReceipt,
    register,
)

from . import INSTAGRAM, MESSENGER, graph
from .models import InstagramAccount, MessengerPage

STANDARD_WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)


def _last_inbound_at(conversation):
    from messaging.models import Message

    return Message.objects.filter(
        conversation_id=conversation.pk, direction=Message.Direction.INBOUND
    ).aggregate(at=Max("created_at"))["at"]


def reply_rule(source, conversation, now=None) -> tuple[str, str, str]:
    """(messaging_type, tag, refusal) for a reply in `conversation` now."""
    now = now or timezone.now()
    last = _last_inbound_at(conversation) if conversation is not None else None
    if last is None:
        return "", "", _("The client has not written yet: Meta allows replies only after they do.")
    if now - last <= STANDARD_WINDOW:
        return "RESPONSE", "", ""
    if source.human_agent_tag and now - last <= HUMAN_AGENT_WINDOW:
        return "MESSAGE_TAG", "HUMAN_AGENT", ""
    if source.human_agent_tag:
        return (
            "",
            "",
            _(
                "More than 7 days since the client last wrote: Meta allows no reply until they "
                "write again."
            ),
        )
    return (
        "",
        "",
        _(
            "More than 24 hours since the client last wrote: Meta allows no free reply (turn on "
            "the human agent tag in Settings if your app may use it, for up to 7 days)."
        ),
    )


class MetaChannel(Channel):
    capabilities: Capabilities

    def reply_window(self, source) -> None:
        """None: Meta's rule is not "a template after 24 hours" (WhatsApp's) but the
        human-agent tag up to 7 days, with its own words: reply_metadata enforces it."""
        return None

    def reply_metadata(self, conversation, options: dict) -> dict:
        super().reply_metadata(conversation, options)  # no channel options
        source = conversation.source
        if source is None:
            return {}
        messaging_type, tag, refusal = reply_rule(source, conversation)
        if refusal:
            raise ValidationError({"body": [refusal]})
        return {"messaging_type": messaging_type, **({"tag": tag} if tag else {})}

    def route(self, source, *, conversation=None, message=None):
        messaging_type, tag, refusal = reply_rule(source, conversation)
        return graph.MetaRoute(
            page_id=source.page_id,
            access_token=source.page_access_token or "",
            app_secret=source.app_secret or "",
            messaging_type=messaging_type or "RESPONSE",
            tag=tag,
            refusal=refusal,
        )

    def send(self, message: OutboundMessage) -> SendReceipt:
        if not message.files:
            return graph.send_text(message.route, message.to_address, message.body)
        # The Send API takes one attachment per message and no caption: the text first (when
        # there is one), then each file; each part once (its record); the message's id is the
        # first part's.
        route, to = message.route, message.to_address  # no quotes on Meta: `_q` unused
        parts = [lambda _q: graph.send_text(route, to, message.body)] if message.body else []
        parts += [lambda _q, file=file: graph.send_file(route, to, file) for file in message.files]
        return SendReceipt(external_id=sending.send_parts(message.key, parts))

    def react(self, reaction: OutboundReaction) -> None:
        graph.send_reaction(
            reaction.route,
            reaction.to_address,
            reaction.target_external_id,
            self.reaction_value(reaction.emoji),
        )

    def reaction_value(self, emoji: str) -> str:
        """What the Send API takes as `reaction` for `emoji` (empty: remove)."""
        return emoji

    def fetches_media(self, source) -> bool:
        return True

    def fetch_media(self, source, media: MediaToFetch, destination) -> str:
        url = (media.ref or {}).get("url") or media.external_id
        if not url:
            raise DownloadError(_("Meta gave no address for this file."))
        return graph.fetch_attachment(url, media.max_bytes, destination)

    # The public profile fields that name a client (User Profile API).
    profile_fields = "name"

    def client_name(self, profile: dict) -> str:
        return str(profile.get("name") or "")


class MessengerChannel(MetaChannel):
    platform = MESSENGER
    label = "Messenger"
    # Attachments are uploaded with their message (25 MB each, Messenger Platform docs).
    capabilities = Capabilities(
        max_text_length=2000,
        reply_window=STANDARD_WINDOW,
        attachments=True,
        file_limits=(
            FileLimit("image", 25 * MB, ("image/jpeg", "image/png", "image/gif")),
            FileLimit("video", 25 * MB, ("video/mp4",)),
            FileLimit("audio", 25 * MB, ("audio/mpeg", "audio/mp4", "audio/ogg", "audio/aac")),
            FileLimit("document", 25 * MB),
        ),
        max_files=5,
        reactions=True,
    )
    source_model = MessengerPage
    profile_fields = "first_name,last_name"

    def client_name(self, profile: dict) -> str:
        return " ".join(
            str(profile.get(key) or "").strip() for key in ("first_name", "last_name")
        ).strip()


class InstagramChannel(MetaChannel):
    platform = INSTAGRAM
    label = "Instagram"
    # Files: Instagram's Send API takes attachments by public URL only (no upload), which a
    # server behind a firewall cannot offer, so agents send text here.
    capabilities = Capabilities(max_text_length=1000, reply_window=STANDARD_WINDOW, reactions=True)
    source_model = InstagramAccount
    profile_fields = "name,username"

    def client_name(self, profile: dict) -> str:
        name, username = str(profile.get("name") or ""), str(profile.get("username") or "")
        return name or (f"@{username}" if username else "")

    def reaction_value(self, emoji: str) -> str:
        """Instagram takes one reaction, the heart ("love"): any emoji of ours becomes it."""
        return "love" if emoji else ""


MESSENGER_CHANNEL = register(MessengerChannel())
INSTAGRAM_CHANNEL = register(InstagramChannel())
