"""Private notes: agents write them in a conversation for each other. A note is a Message
with direction `note`: it shows in the thread and reaches colleagues through the same
`message.created` event, but it is never sent (every send path takes outbound messages only),
is never unread, never becomes the conversation's preview or last-message time, and never
counts as a reply. `@username` mentions of colleagues notify them."""

import logging
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User

from .. import events
from ..models import Conversation, Message
from ..payloads import message_payload

logger = logging.getLogger(__name__)

NOTE_MAX_LENGTH = 10_000
# "@name" at the start or after a space/punctuation (not inside an email address).
MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")


def mentioned_users(company_id: int, body: str) -> list[User]:
    """The active members of the company named as @username in `body`, in order."""
    names = []
    for match in MENTION.finditer(body):
        name = match.group(1).rstrip(".").lower()
        if name and name not in names:
            names.append(name)
    if not names:
        return []
    found = {
        user.username.lower(): user
        for user in User.objects.filter(company_id=company_id, is_active=True).filter(
            username__iregex=r"^(" + "|".join(re.escape(name) for name in names[:50]) + r")$"
        )
    }
    return [found[name] for name in names if name in found]


def add_note(author, conversation: Conversation, body: str) -> Message:
    """Store a private note by `author` (a member of the conversation's company) and tell
    the company's open pages; mentioned colleagues are notified after commit."""
    body = (body or "").replace("\r\n", "\n").strip()
    if not body:
        raise ValidationError({"body": [_("Write the note first.")]})
    if len(body) > NOTE_MAX_LENGTH:
        raise ValidationError(
            {
                "body": [
                    _("At most %(limit)d characters (%(count)d given).")
                    % {"limit": NOTE_MAX_LENGTH, "count": len(body)}
                ]
            }
        )
    if "\x00" in body:
        raise ValidationError({"body": [_("The note contains a NUL character.")]})
    if author is None or author.company_id != conversation.company_id:
        raise ValidationError({"author": [_("Only a member of the company writes its notes.")]})
    mentions = [user for user in mentioned_users(conversation.company_id, body) if user != author]
    with transaction.atomic():
        note = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.NOTE,
            author=author,
            sender_name=author.display_name[:200],
            body=body,
            status=Message.Status.RECEIVED,  # stored; there is nothing to deliver
            metadata={"mentions": [user.pk for user in mentions]} if mentions else {},
        )
        events.publish("message.created", message_payload(note), conversation=conversation)
        if mentions:
            from notifications import services as notifications

            notifications.mentioned(note, conversation, [user.pk for user in mentions])
    logger.info(
        "note: stored note=%s conversation=%s mentions=%d", note.pk, conversation.pk, len(mentions)
    )
    return note
