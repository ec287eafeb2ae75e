"""The Telegram sender: replies go out through the account's live client (its holder)."""

from messaging.providers import OutboundMessage, SendReceipt

from .listener import send_through_listener


class TelegramProvider:
    def send_text(self, message: OutboundMessage) -> SendReceipt:
        return send_through_listener(
            message.source_id, message.message_id, message.thread_id, message.body
        )
