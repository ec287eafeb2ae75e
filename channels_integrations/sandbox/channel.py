"""The sandbox channel: a send is accepted at once (status `sent`); the customer's page moves
it to delivered or read (services.customer_marks)."""

import uuid
from dataclasses import dataclass

from messaging.channels import Capabilities, Channel, OutboundMessage, SendReceipt, register

from . import PLATFORM
from .models import SandboxInbox


@dataclass(frozen=True)
class SandboxRoute:
    sandbox_id: int


class SandboxChannel(Channel):
    platform = PLATFORM
    label = "Sandbox"
    capabilities = Capabilities(max_text_length=4096)
    source_model = SandboxInbox

    def route(self, source, *, conversation=None, message=None) -> SandboxRoute:
        return SandboxRoute(sandbox_id=source.pk)

    def send(self, message: OutboundMessage) -> SendReceipt:
        # The far end is our own page, which reads the stored message: nothing to hand over.
        return SendReceipt(external_id=f"sandbox-{uuid.uuid4().hex}")


SANDBOX_CHANNEL = register(SandboxChannel())
