"""The email channel: replies go out by SMTP from the conversation's account, threaded, with
the subject, copies and signature they were queued with and the answered mail quoted."""

from django.conf import settings

from messaging.channels import (
    Capabilities,
    Channel,
    FileLimit,
    OutboundMessage,
    SendReceipt,
    register,
)

from .. import channel_metrics
from ..models import EmailAccount
from . import PLATFORM, replies
from .route import SmtpRoute
from .smtp import reply_subject, send_reply


class EmailChannel(Channel):
    platform = PLATFORM
    label = "Email"
    # Files travel inside the mail: the whole mail must fit the mailbox's SMTP size
    # (EMAIL_MAX_MESSAGE_BYTES, 25 MB by default; base64 makes files a third larger).
    capabilities = Capabilities(
        max_text_length=100_000,
        attachments=True,
        file_limits=(FileLimit("document", settings.EMAIL_MAX_MESSAGE_BYTES * 3 // 4),),
        files_total_bytes=settings.EMAIL_MAX_MESSAGE_BYTES * 3 // 4,
        max_files=20,
        compose="mail",
    )
    source_model = EmailAccount

    def client_address(self, conversation) -> str:
        client = conversation.client
        return client.email if client and client.email else ""

    def reply_metadata(self, conversation, options: dict) -> dict:
        return replies.reply_metadata(conversation, options, self.client_address(conversation))

    def route(self, source: EmailAccount, *, conversation=None, message=None):
        """A reply: what it was queued with (subject, copies, signature, the message it
        answers and its thread headers); rows queued before those were stored answer the
        conversation's latest mail with a Message-ID."""
        if conversation is None:
            return SmtpRoute.of(source)
        stored = (message.metadata or {}) if message is not None else {}
        reply = {
            "subject": stored.get("subject") or reply_subject(conversation.subject),
            "cc": stored.get("cc", ()),
            "bcc": stored.get("bcc", ()),
            "signature": stored.get("signature", ""),
        }
        answered = None
        if stored.get("reply_to"):
            answered = conversation.messages.filter(pk=stored["reply_to"]).first()
        if stored.get("in_reply_to"):
            reply.update(in_reply_to=stored["in_reply_to"], references=stored.get("references", ()))
        else:
            answered = answered or replies.answered_message(conversation, exclude=message)
            if answered is not None:
                reply.update(replies.thread_headers(answered))
        if answered is not None:
            reply["quote"] = replies.quote_of(answered)
        return SmtpRoute.of(source, **reply)

    def send(self, message: OutboundMessage) -> SendReceipt:
        try:
            receipt = send_reply(message)
        except Exception:
            channel_metrics.increment("email", "errors")
            raise
        channel_metrics.increment("email", "messages_sent")
        return receipt


CHANNEL = register(EmailChannel())
