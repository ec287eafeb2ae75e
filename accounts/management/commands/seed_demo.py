"""Create the demo company with an admin, an agent, a sandbox channel and some conversations.
Safe to run again: it never duplicates the demo data. The logins are generated once and kept
in DEMO_LOGINS_FILE (git-ignored `var/demo-logins.txt`); each run keeps those passwords (and
puts them back if someone changed them). Delete the file for new ones."""

import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
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
from channels_integrations.sandbox import services as sandbox
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
ADMIN, AGENT = "demo-admin", "demo-agent"


# The sandbox's example bot: keyword -> reply.
SANDBOX_BOT_RULES = (
    ("price", "Our prices start at 10 € a month. (This answer comes from the sandbox's bot.)"),
    ("цена", "Цены начинаются от 10 € в месяц. (Это ответ бота песочницы.)"),
)


def logins_file() -> Path:
    return Path(settings.DEMO_LOGINS_FILE)


def read_logins() -> dict[str, str]:
    """{username: password} from DEMO_LOGINS_FILE (lines "username password"), or {}."""
    try:
        lines = logins_file().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    pairs = (line.split(None, 1) for line in lines if line.strip() and not line.startswith("#"))
    return {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2}


def write_logins(logins: dict[str, str]) -> None:
    path = logins_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "# Switchboard demo logins (git-ignored). Delete this file for new passwords.\n"
    text += "".join(f"{name} {password}\n" for name, password in logins.items())
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


def banner(url: str, logins: dict[str, str]) -> str:
    return (
        "\nSwitchboard is running.\n"
        + f"  Open:   {url}\n"
        + f"  Admin:  {ADMIN} / {logins.get(ADMIN, '?')}\n"
        + f"  Agent:  {AGENT} / {logins.get(AGENT, '?')}\n"
        + "  Try:    Settings → Sandbox (test channel): write as a customer, answer in the inbox.\n"
        + f"  Logins are kept in {logins_file()}. Stop with Ctrl-C.\n"
    )


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

        parser.add_argument(
            "--quiet", action="store_true", help="print one line, not the logins (make run)"
        )

    @transaction.atomic
    def handle(self, *args, url, quiet=False, **options):
        company, created = Company.objects.get_or_create(
            slug=DEMO_SLUG, defaults={"name": "Demo Company"}
        )
        logins = read_logins()
        for username in (ADMIN, AGENT):
            logins.setdefault(username, secrets.token_urlsafe(9))
        admin = self._user(company, ADMIN, "Dana", "Admin", Role.ADMIN, logins[ADMIN])
        agent = self._user(company, AGENT, "Alex", "Agent", Role.AGENT, logins[AGENT])
        write_logins(logins)
        if created or not company.conversations.exists():
            self._seed_data(company, admin, agent)
        self._seed_sandbox(company, agent)
        self._seed_sandbox_bot(company, admin)
        if quiet:
            self.stdout.write(f"Demo company ready (logins in {logins_file()}).")
        else:
            self.stdout.write(banner(url, logins))

    def _seed_sandbox(self, company, agent):
        """The company's sandbox with one customer's thread, written through the one door
        and answered by the agent through the one send policy (the worker sends it)."""
        from messaging.models import Conversation as _Conversation
        from messaging.services import send_message

        box = sandbox.sandbox_of(company)
        if _Conversation.objects.of_source(box).exists():
            return
        result = sandbox.customer_writes(
            box, "Sam Sandbox", "Hi! I'm trying your sandbox. Can you hear me?"
        )
        send_message(
            result.conversation,
            agent,
            "Loud and clear! Reply from Settings → Sandbox to play the customer.",
        )

    def _seed_sandbox_bot(self, company, admin):
        """One example bot rule on the sandbox (the bots' services, as on a number): the
        customer writing "price" (or "цена") gets its answer from the worker."""
        box = sandbox.sandbox_of(company)
        if Bot.objects.filter(sandbox=box).exists():
            return
        for trigger, reply in SANDBOX_BOT_RULES:
            sandbox.add_bot_rule(admin, box, trigger, reply)

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
        if not user.check_password(password):  # new, or changed since: the kept one again
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
