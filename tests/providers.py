"""Providers for tests, plugged in through settings.MESSAGING_PROVIDERS: the far end of a network
this machine cannot reach, replaced at the provider interface and nowhere else."""

import threading

from messaging.providers import OutboundMessage, SendError, SendReceipt

_lock = threading.Lock()
SENT: list[OutboundMessage] = []  # what RecordingProvider was asked to send, in order


class RecordingProvider:
    """Accepts every message and remembers it, unless `script` holds an error for this send."""

    sent = SENT
    script: list[Exception] = []  # errors to raise on the next sends, in order (tests set it)

    def send_text(self, message: OutboundMessage) -> SendReceipt:
        with _lock:
            SENT.append(message)
            script = RecordingProvider.script
            error = script.pop(0) if script else None
        if error is not None:
            raise error
        return SendReceipt(external_id=f"wamid.{message.message_id}")


class RefusingProvider:
    """Refuses every message, as a channel would refuse a blocked recipient."""

    def send_text(self, message: OutboundMessage) -> SendReceipt:
        raise SendError("The recipient cannot be reached.")


def clear() -> None:
    with _lock:
        SENT.clear()
        RecordingProvider.script = []
