"""Business hours per team, and the away reply outside them.

An inbound message on a channel row whose team keeps business hours, arriving while the team
is closed, gets the team's away reply through the normal send path (send_message), at most
once per conversation per day (the team's day; a unique row decides), and never in answer to
an automatic message: auto-replies (`Auto-Submitted` other than "no",
`X-Auto-Response-Suppress`, `Precedence: auto_reply`) and bulk or list mail. Our own away
reply says it is automatic (email: `Auto-Submitted: auto-replied`), so two responders cannot
answer each other for ever.
"""

import logging
import zoneinfo
from datetime import datetime, time
from time import monotonic

from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging.models import Conversation, Message

from .models import AwayReply, Team

logger = logging.getLogger(__name__)

AUTOMATED_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}


def is_open(team: Team, at: datetime | None = None) -> bool:
    """Whether the team works at `at` (now): its weekday has hours and `at` is within them."""
    local = (at or timezone.now()).astimezone(zoneinfo.ZoneInfo(team.timezone))
    span = (team.hours or {}).get(str(local.weekday()))
    if not span:
        return False
    start, end = (time.fromisoformat(value) for value in span)
    return start <= local.time() < end


def is_automated(metadata: dict | None) -> bool:
    """An auto-reply or bulk message, as the channel flagged it."""
    metadata = metadata or {}
    auto_submitted = str(metadata.get("auto_submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":  # RFC 3834
        return True
    if metadata.get("auto_reply") or metadata.get("bulk"):
        return True
    return str(metadata.get("precedence", "")).strip().lower() in AUTOMATED_PRECEDENCE


# Every inbound message asks whether its company keeps business hours: the answer is kept
# this long per process (the usual company keeps none, and pays no query per message).
HOURS_CACHE_SECONDS = 10.0
_keeps_hours: dict[int, tuple[float, bool]] = {}


def company_keeps_hours(company_id: int) -> bool:
    now = monotonic()
    cached = _keeps_hours.get(company_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    keeps = Team.objects.filter(company_id=company_id, hours_enabled=True).exists()
    _keeps_hours[company_id] = (now + HOURS_CACHE_SECONDS, keeps)
    return keeps


def forget_hours() -> None:
    _keeps_hours.clear()


def reply_if_closed(message_id: int, conversation_id: int, company_id: int) -> Message | None:
    """The away reply to this inbound message, if one is due (else None)."""
    from messaging.services import send_message

    if not company_keeps_hours(company_id):
        return None
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    source = conversation.source if conversation is not None else None
    team_id = getattr(source, "team_id", None)
    if not team_id:
        return None
    team = Team.objects.filter(pk=team_id, hours_enabled=True).first()
    if team is None or not team.away_message.strip():
        return None
    now = timezone.now()
    if is_open(team, now):
        return None
    message = Message.objects.filter(pk=message_id).only("metadata", "direction").first()
    if message is None or message.direction != Message.Direction.INBOUND:
        return None
    if is_automated(message.metadata):
        logger.info("away reply: conversation=%s automatic message; no reply", conversation_id)
        return None
    day = now.astimezone(zoneinfo.ZoneInfo(team.timezone)).date()
    try:
        with transaction.atomic():
            AwayReply.objects.create(conversation=conversation, day=day)
            reply = send_message(
                conversation,
                None,
                team.away_message,
                metadata={"auto_submitted": "auto-replied", "away_reply": True},
            )
    except IntegrityError:  # already answered today (a concurrent message won)
        return None
    logger.info(
        "away reply: conversation=%s team=%s message=%s", conversation_id, team.pk, reply.pk
    )
    return reply
