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

from messaging.channels import Capabilities, Channel, OutboundMessage, SendReceipt, register

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
        return graph.send_text(message.route, message.to_address, message.body)


class MessengerChannel(MetaChannel):
    platform = MESSENGER
    label = "Messenger"
    capabilities = Capabilities(max_text_length=2000, reply_window=STANDARD_WINDOW)
    source_model = MessengerPage


class InstagramChannel(MetaChannel):
    platform = INSTAGRAM
    label = "Instagram"
    capabilities = Capabilities(max_text_length=1000, reply_window=STANDARD_WINDOW)
    source_model = InstagramAccount


MESSENGER_CHANNEL = register(MessengerChannel())
INSTAGRAM_CHANNEL = register(InstagramChannel())
