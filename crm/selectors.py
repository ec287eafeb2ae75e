"""Reads for the CRM pages: the dashboard figures and clients."""

import re

from django.db.models import Count, Q

from accounts.scoping import scoped
from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber
from crm.models import Client
from messaging import channels
from messaging.models import Conversation, TeamChat


def dashboard_counts(user) -> dict:
    """The company's figures for the dashboard, in six aggregate queries whatever the size."""
    numbers = scoped(WhatsAppNumber, user).exclude(status=WhatsAppNumber.Status.DELETING)
    platforms = channels.platform_choices()  # (platform, label) of every channel
    open_q = Q(status=Conversation.Status.OPEN)
    conversations = scoped(Conversation, user).aggregate(
        open_total=Count("id", filter=open_q),
        unread=Count("id", filter=Q(unread_count__gt=0)),
        **{f"open_{p}": Count("id", filter=open_q & Q(platform=p)) for p, _label in platforms},
    )
    return {
        "whatsapp": numbers.aggregate(
            total=Count("id"),
            connected=Count("id", filter=Q(status=WhatsAppNumber.Status.CONNECTED)),
        ),
        "telegram": scoped(TelegramAccount, user).aggregate(
            total=Count("id"),
            connected=Count("id", filter=Q(status=TelegramAccount.Status.CONNECTED)),
        ),
        "email": scoped(EmailAccount, user).aggregate(
            total=Count("id"),
            active=Count("id", filter=Q(is_active=True)),
            failing=Count("id", filter=Q(status=EmailAccount.Status.ERROR)),
        ),
        "open_conversations": conversations["open_total"],
        "open_by_platform": [
            (label, platform, conversations[f"open_{platform}"]) for platform, label in platforms
        ],
        "unread_conversations": conversations["unread"],
        "clients": scoped(Client, user).count(),
        "team_chats": scoped(TeamChat, user).filter(memberships__user=user).count(),
    }


def search_clients(user, query: str = ""):
    """The company's clients whose name, phone, email or Telegram username contains `query`."""
    clients = scoped(Client, user)
    query = query.strip()
    if not query:
        return clients
    condition = Q(name__icontains=query) | Q(email__icontains=query)
    if username := query.lstrip("@"):
        condition |= Q(telegram_username__icontains=username)
    # Phones are stored as E.164, so "+49 151-23" is looked up as "+4915123".
    digits = re.sub(r"[^\d+]", "", query)
    if len(re.sub(r"\D", "", digits)) >= 3:
        condition |= Q(phone__contains=digits)
    return clients.filter(condition)


def client_conversations(user, client, limit: int = 100):
    return (
        scoped(Conversation, user)
        .filter(client=client)
        .select_related("assignee")
        .order_by("-last_message_at", "-id")[:limit]
    )
