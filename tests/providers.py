"""Providers for tests, plugged in through settings.MESSAGING_PROVIDERS."""

import threading

from messaging.providers import OutboundMessage, SendError, SendReceipt

_lock = threading.Lock()
SENT: list[OutboundMessage] = []  # what RecordingProvider was asked to send, in order


class RecordingProvider:
    """Accepts every message and remembers it; the receipt's id is derived from ours."""

    def send_text(self, message: OutboundMessage) -> SendReceipt:
        with _lock:
            SENT.append(message)
        return SendReceipt(external_id=f"test-{message.message_id}")


class RefusingProvider:
    """Refuses every message, as a channel would refuse a blocked recipient."""

    def send_text(self, message: OutboundMessage) -> SendReceipt:
        raise SendError("The recipient cannot be reached.")


def clear() -> None:
    with _lock:
        SENT.clear()
