"""The email sender: an agent's reply goes out by SMTP from the conversation's account."""

from messaging.providers import OutboundMessage, SendReceipt

from .smtp import send_reply


class EmailProvider:
    def send_text(self, message: OutboundMessage) -> SendReceipt:
        return send_reply(message.extra, message)
