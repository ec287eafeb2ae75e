"""Writes of the sandbox: the company's sandbox (created on first use), the customer writing,
the customer's phone reporting a reply or a broadcast delivered or read, and the sandbox's
bot rules and broadcasts (through the same services as a WhatsApp number's)."""

import uuid
import zlib

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from crm.models import Client
from messaging.models import Conversation, Message
from messaging.services import IngestResult, Sender, ingest_inbound, record_delivery_status

from ..models import Bot, BotRule, Broadcast, BroadcastRecipient
from ..whatsapp import bots, broadcasts
from .models import SandboxInbox

# Pretend customers get phone numbers from a range reserved for fiction (Ofcom's drama
# numbers, +44 7700 900000-900999), so broadcasts, which address phones, reach them.
FICTIONAL_PHONE_PREFIX = "+447700900"
SANDBOX_BOT_NAME = "Sandbox bot"

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
    result = ingest_inbound(
        sandbox,
        thread,
        f"sandbox-in-{uuid.uuid4().hex}",
        # An address of the reserved .invalid domain: the customer becomes a client (found
        # again by it), never mixed up with a real one.
        Sender(address=thread, name=name, email=f"{thread}@sandbox.invalid"),
        body,
    )
    if result.conversation.client_id:
        give_fictional_phone(result.conversation.client_id, thread)
    return result


def give_fictional_phone(client_id: int, thread: str) -> None:
    """A pretend customer without a phone gets a free one of the fictional range."""
    client = Client.objects.filter(pk=client_id, phone="").first()
    if client is None:
        return
    start = zlib.crc32(thread.encode()) % 1000
    taken = {
        str(phone)
        for phone in Client.objects.filter(
            company_id=client.company_id, phone__startswith=FICTIONAL_PHONE_PREFIX
        ).values_list("phone", flat=True)
    }
    for offset in range(1000):
        phone = f"{FICTIONAL_PHONE_PREFIX}{(start + offset) % 1000:03d}"
        if phone in taken:
            continue
        try:
            with transaction.atomic():
                Client.objects.filter(pk=client_id, phone="").update(phone=phone)
            return
        except IntegrityError:  # taken meanwhile: the next one
            continue


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


def customer_marks_broadcast(sandbox: SandboxInbox, recipient_id: int, status: str) -> bool:
    """The customer's phone reports a broadcast delivered or read (forward only), as a
    channel's status webhook would. False when it is not this sandbox's or would move back."""
    if status not in CUSTOMER_STATUSES:
        raise ValueError(status)
    if not BroadcastRecipient.objects.filter(pk=recipient_id, broadcast__sandbox=sandbox).exists():
        return False
    return broadcasts.record_recipient_status(recipient_id, status)


def sandbox_bot(actor, sandbox: SandboxInbox) -> Bot:
    """The sandbox's bot (created, through the bots' service, the first time)."""
    found = Bot.objects.filter(sandbox=sandbox).order_by("pk").first()
    return found or bots.create_bot(actor, sandbox, name=SANDBOX_BOT_NAME)


def add_bot_rule(actor, sandbox: SandboxInbox, trigger: str, reply_text: str) -> BotRule:
    """A keyword rule on the sandbox's bot (the bots' service validates it)."""
    with transaction.atomic():
        bot = sandbox_bot(actor, sandbox)
        return bots.create_rule(
            actor, bot, match_type=BotRule.MatchType.KEYWORD, trigger=trigger, reply_text=reply_text
        )


def broadcast_to_customers(actor, sandbox: SandboxInbox, text: str, client_ids) -> Broadcast:
    """A broadcast from the sandbox to some of its customers (the broadcasts' service: the
    worker sends it exactly as from a WhatsApp number)."""
    return broadcasts.create_broadcast(actor, number=sandbox, text=text, client_ids=client_ids)
