"""Writes of the sandbox: the company's sandbox (created on first use), the customer writing,
and the customer's phone reporting a reply delivered or read."""

import uuid

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from messaging.models import Conversation, Message
from messaging.services import IngestResult, Sender, ingest_inbound, record_delivery_status

from .models import SandboxInbox

CUSTOMER_STATUSES = (Message.Status.DELIVERED, Message.Status.READ)


def sandbox_of(company) -> SandboxInbox:
    """The company's sandbox, created the first time it is asked for."""
    found = SandboxInbox.objects.filter(company=company).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return SandboxInbox.objects.create(company=company)
    except IntegrityError:  # created by a concurrent request
        return SandboxInbox.objects.get(company=company)


def customer_thread_id(name: str) -> str:
    """A customer's thread in the sandbox: their name, as an address."""
    return "customer-" + (slugify(name)[:80] or "anonymous")


def customer_writes(sandbox: SandboxInbox, name: str, body: str) -> IngestResult:
    """A pretend customer writes: it arrives like any channel's message (the one door)."""
    name = name.strip()[:100] or "Sandbox customer"
    thread = customer_thread_id(name)
    return ingest_inbound(
        sandbox,
        thread,
        f"sandbox-in-{uuid.uuid4().hex}",
        # An address of the reserved .invalid domain: the customer becomes a client (found
        # again by it), never mixed up with a real one.
        Sender(address=thread, name=name, email=f"{thread}@sandbox.invalid"),
        body,
    )


def customer_marks(sandbox: SandboxInbox, message_id: int, status: str) -> bool:
    """The customer's phone reports a reply delivered or read (forward only, like a channel's
    status webhook). False when it is not a reply in this sandbox or would move backwards."""
    if status not in CUSTOMER_STATUSES:
        raise ValueError(status)
    conversations = Conversation.objects.of_source(sandbox)
    if not Message.objects.filter(
        pk=message_id, conversation__in=conversations, direction=Message.Direction.OUTBOUND
    ).exists():
        return False
    return record_delivery_status(message_id, status)
