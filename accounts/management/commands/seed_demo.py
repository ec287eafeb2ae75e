"""Create (or refresh) the demo company with an admin, an agent and some conversations, and
print the URL and logins. Safe to run again: it never duplicates the demo data, and it sets
fresh passwords each time (printed below)."""

import secrets
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.models import Company, Role, User
from channels_integrations.models import (
    Bot,
    BotRule,
    EmailAccount,
    TelegramAccount,
    WhatsAppNumber,
    WhatsAppSession,
)
from crm.models import Client
from messaging.models import (
    ChatMember,
    ChatMessage,
    Conversation,
    Message,
    Reaction,
    TeamChat,
)

DEMO_SLUG = "demo"

CLIENTS = [
    ("Maria Schmidt", "+4915112345601", "maria@example.org"),
    ("Jonas Weber", "+4915112345602", "jonas@example.org"),
    ("Aylin Kaya", "+4915112345603", "aylin@example.org"),
    ("Lucas Martin", "+33612345604", "lucas@example.fr"),
]
WHATSAPP_THREADS = [
    ("Hi! Do you deliver to Hamburg?", "Yes, within 2 days."),
    ("My order #1042 hasn't arrived.", None),
    ("What are your opening hours?", "9–18 on weekdays."),
]


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="URL to print")

    @transaction.atomic
    def handle(self, *args, url, **options):
        company, created = Company.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Demo Company"}
        )
        admin_password = secrets.token_urlsafe(9)
        agent_password = secrets.token_urlsafe(9)
        admin = self._user(company, "demo-admin", "Dana", "Admin", Role.ADMIN, admin_password)
        agent = self._user(company, "demo-agent", "Alex", "Agent", Role.AGENT, agent_password)
        if created or not company.conversations.exists():
            self._seed_data(company, admin, agent)
        self.stdout.write(
            self.style.SUCCESS("\nSwitchboard demo is ready.\n")
            + f"  Open:   {url}\n"
            + f"  Admin:  demo-admin / {admin_password}\n"
            + f"  Agent:  demo-agent / {agent_password}\n"
        )

    def _user(self, company, username, first, last, role, password):
        user, _ = User.objects.get_or_create(
            username=username,
            defaults={
                "company": company,
                "first_name": first,
                "last_name": last,
                "email": f"{username}@demo.example",
                "role": role,
            },
        )
        user.set_password(password)
        user.save(update_fields=["password"])
        return user

    def _seed_data(self, company, admin, agent):
        now = timezone.now()
        clients = [
            Client.objects.create(company=company, name=name, phone=phone, email=email)
            for name, phone, email in CLIENTS
        ]
        number = WhatsAppNumber.objects.create(
            company=company, phone="+4930123456789", display_name="Support line"
        )
        WhatsAppSession.objects.create(number=number)
        bot = Bot.objects.create(
            number=number, name="Opening hours", greeting="Hi! How can we help?"
        )
        BotRule.objects.create(
            bot=bot, position=1, trigger="hours", reply_text="We're open 9–18 on weekdays."
        )
        telegram = TelegramAccount.objects.create(
            company=company,
            name="Sales Telegram",
            phone="+4930123456780",
            api_id=12345,
            api_hash="0123456789abcdef0123456789abcdef",
            is_active=False,
        )
        mailbox = EmailAccount.objects.create(
            company=company,
            owner=admin,
            address="support@demo.example",
            imap_host="imap.demo.example",
            smtp_host="smtp.demo.example",
            username="support@demo.example",
            is_active=False,
        )
        for index, (client, (question, answer)) in enumerate(
            zip(clients, WHATSAPP_THREADS, strict=False)
        ):
            at = now - timedelta(hours=3 * index + 1)
            conversation = Conversation.objects.create(
                company=company,
                source=number,
                external_thread_id=str(client.phone),
                client=client,
                assignee=agent if index == 0 else None,
            )
            self._message(conversation, Message.Direction.INBOUND, question, at, client=client)
            if answer:
                self._message(
                    conversation,
                    Message.Direction.OUTBOUND,
                    answer,
                    at + timedelta(minutes=4),
                    author=agent,
                )
        conversation = Conversation.objects.create(
            company=company,
            source=telegram,
            external_thread_id="777000123",
            client=clients[3],
        )
        self._message(
            conversation,
            Message.Direction.INBOUND,
            "Bonjour, do you ship to Lyon?",
            now - timedelta(minutes=30),
            client=clients[3],
        )
        conversation = Conversation.objects.create(
            company=company,
            source=mailbox,
            external_thread_id="<invoice-77@example.org>",
            client=clients[1],
            subject="Invoice 77",
        )
        self._message(
            conversation,
            Message.Direction.INBOUND,
            "Could you resend invoice 77 as PDF?",
            now - timedelta(minutes=10),
            client=clients[1],
        )
        chat = TeamChat.objects.create(company=company, name="Support team", created_by=admin)
        ChatMember.objects.bulk_create(
            [ChatMember(chat=chat, user=admin), ChatMember(chat=chat, user=agent)]
        )
        first = ChatMessage.objects.create(
            chat=chat, author=admin, body="Welcome to Switchboard 👋"
        )
        ChatMessage.objects.create(
            chat=chat, author=agent, body="Taking the Hamburg delivery question."
        )
        Reaction.objects.create(message=first, user=agent, emoji="👍")

    def _message(self, conversation, direction, body, at, client=None, author=None):
        inbound = direction == Message.Direction.INBOUND
        message = Message.objects.create(
            conversation=conversation,
            direction=direction,
            body=body,
            external_id=f"demo-{conversation.pk}-{conversation.messages.count()}",
            status=Message.Status.RECEIVED if inbound else Message.Status.SENT,
            sender_name=(client.name if client else author.display_name),
            sender_address=str(client.phone) if client else "",
            author=author,
        )
        Message.objects.filter(pk=message.pk).update(created_at=at, sent_at=None if inbound else at)
        conversation.last_message_at = at
        conversation.last_message_preview = body[:200]
        conversation.unread_count = conversation.unread_count + 1 if inbound else 0
        conversation.save(update_fields=["last_message_at", "last_message_preview", "unread_count"])
