"""The small typed interface every channel's sender implements.

Providers get plain data and touch no ORM; the send task maps their answers onto our rows.
Which provider serves which platform is a setting (`MESSAGING_PROVIDERS`), so tests swap the
far end without touching our code.
"""

from dataclasses import dataclass, field
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class OutboundMessage:
    message_id: int  # ours; a provider may use it as an idempotency key
    platform: str
    source_id: int  # the WhatsApp number / Telegram account / email account id
    thread_id: str  # the conversation's external thread id (phone, peer id, Message-ID root)
    to_address: str  # phone, Telegram user id or email address of the client
    body: str
    subject: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    external_id: str


class SendError(Exception):
    """The provider refused the message; `reason` is shown to the agent."""

    transient = False

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TransientSendError(SendError):
    """Worth retrying (network trouble, rate limit, flood wait)."""

    transient = True


class Provider(Protocol):
    def send_text(self, message: OutboundMessage) -> SendReceipt: ...


class NotConnectedProvider:
    """Stands in for a channel whose sender has not been set up: fails honestly."""

    def send_text(self, message: OutboundMessage) -> SendReceipt:
        raise SendError(f"Sending on {message.platform} is not available on this server yet.")


def provider_for(platform: str) -> Provider:
    path = settings.MESSAGING_PROVIDERS.get(platform, "messaging.providers.NotConnectedProvider")
    return import_string(path)()
