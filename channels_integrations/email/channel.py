"""The email channel: replies go out by SMTP from the conversation's account, threaded."""

from messaging.channels import Capabilities, Channel, OutboundMessage, SendReceipt, register

from ..models import EmailAccount
from . import PLATFORM
from .route import SmtpRoute
from .smtp import send_reply

REFERENCES_KEPT = 20


class EmailChannel(Channel):
    platform = PLATFORM
    label = "Email"
    capabilities = Capabilities(max_text_length=100_000, attachments=True)
    source_model = EmailAccount

    def client_address(self, conversation) -> str:
        client = conversation.client
        return client.email if client and client.email else ""

    def route(self, source: EmailAccount, *, conversation=None, message=None):
        """A reply answers the conversation's latest mail with a Message-ID (ours included)."""
        if conversation is None:
            return SmtpRoute.of(source)
        latest = conversation.messages.exclude(external_id=None)
        if message is not None:
            latest = latest.exclude(pk=message.pk)
        row = latest.order_by("-created_at", "-id").values_list("external_id", "metadata").first()
        if not row:
            return SmtpRoute.of(source)
        parent, metadata = row
        references = [*(metadata or {}).get("references", []), parent]
        return SmtpRoute.of(source, in_reply_to=parent, references=references[-REFERENCES_KEPT:])

    def send(self, message: OutboundMessage) -> SendReceipt:
        return send_reply(message)


CHANNEL = register(EmailChannel())
