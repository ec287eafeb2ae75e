"""Team chat writes: create, message, edit, react, leave, delete.

Every change is published after commit through messaging.events, addressed to the chat's
members only (`user.<id>` groups), never to the company group. Each write that reads the
member list first locks the chat row, so the recipients of an event are exactly the members
when it commits: someone who left (or a chat deleted) in between is never told of it.
"""

import logging
import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.db.upsert import insert_unless_conflict
from crm.services import delete_in_database

from .. import events
from ..models import ChatMember, ChatMessage, Reaction, TeamChat
from ..payloads import (
    chat_message_payload,
    chat_payload,
    reaction_event_payload,
)

logger = logging.getLogger(__name__)

CHAT_NAME_MAX = TeamChat._meta.get_field("name").max_length
CHAT_BODY_MAX = ChatMessage._meta.get_field("body").max_length
EMOJI_MAX = Reaction._meta.get_field("emoji").max_length


class NotAMember(PermissionDenied):
    """The actor is not (or no longer) a member of the chat."""


# ---------------------------------------------------------------- validation


def validate_chat_body(body) -> str:
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": [_("Write a message first.")]})
    if len(body) > CHAT_BODY_MAX:
        raise ValidationError(
            {
                "body": [
                    _("At most %(limit)s characters (%(count)s given).")
                    % {"limit": CHAT_BODY_MAX, "count": len(body)}
                ]
            }
        )
    return body


def validate_emoji(emoji) -> str:
    """One emoji (or a short sequence): no spaces, control characters or slashes."""
    emoji = (emoji or "").strip()
    if not emoji:
        raise ValidationError({"emoji": [_("Choose an emoji.")]})
    if len(emoji) > EMOJI_MAX:
        raise ValidationError(
            {"emoji": [_("At most %(limit)s characters.") % {"limit": EMOJI_MAX}]}
        )
    if any(c.isspace() or c == "/" or unicodedata.category(c) == "Cc" for c in emoji):
        raise ValidationError(
            {"emoji": [_("An emoji cannot contain spaces, slashes or controls.")]}
        )
    return emoji


def _company_members(actor, members) -> list:
    """The users for `members` (users or ids): active people of the actor's company only."""
    try:
        ids = {int(getattr(member, "pk", member)) for member in members}
    except (TypeError, ValueError):
        raise ValidationError({"members": [_("Members are given by their user ids.")]}) from None
    ids.discard(actor.pk)
    users = list(
        get_user_model().objects.filter(pk__in=ids, company_id=actor.company_id, is_active=True)
    )
    unknown = sorted(ids - {user.pk for user in users})
    if unknown:
        # Missing and another company's are the same answer (the tenant rule).
        raise ValidationError(
            {
                "members": [
                    _("Choose members of your company; these ids are not: %(ids)s")
                    % {"ids": ", ".join(str(pk) for pk in unknown)}
                ]
            }
        )
    return users


# ---------------------------------------------------------------- helpers


def _lock_chat(chat_id: int, *, delete: bool = False) -> None:
    """Lock the chat row for this transaction (waiting for a concurrent delete or leave);
    a chat that is gone is a 404."""
    rows = TeamChat.objects.filter(pk=chat_id).select_for_update(no_key=not delete)
    if not list(rows.values_list("pk", flat=True)):
        raise Http404("This chat was deleted.")


def _members(chat_id: int) -> list:
    return [
        membership.user
        for membership in ChatMember.objects.filter(chat_id=chat_id)
        .select_related("user")
        .order_by("user__username")
    ]


def _member_ids(chat_id: int) -> list[int]:
    return list(
        ChatMember.objects.filter(chat_id=chat_id)
        .order_by("user_id")
        .values_list("user_id", flat=True)
    )


def _require_member(actor, member_ids) -> None:
    if actor.pk not in member_ids:
        raise NotAMember("Only members of this chat can do this.")


def _reactions(message_id: int) -> list:
    return list(Reaction.objects.filter(message_id=message_id).select_related("user"))


def _sorted_people(users) -> list:
    return sorted(users, key=lambda user: user.username)


# ---------------------------------------------------------------- chats


def create_chat(actor, *, name: str = "", members=()) -> TeamChat:
    """A chat of the actor's company; the actor is always a member. Without a name, it is
    named after its members."""
    if not actor.company_id:
        raise PermissionDenied(_("Only members of a company have team chats."))
    others = _company_members(actor, members)
    name = " ".join((name or "").split())
    if not name:
        name = ", ".join(user.display_name for user in [actor, *others])
        if len(name) > CHAT_NAME_MAX:
            name = name[: CHAT_NAME_MAX - 1] + "…"
    if len(name) > CHAT_NAME_MAX:
        raise ValidationError(
            {"name": [_("At most %(limit)s characters.") % {"limit": CHAT_NAME_MAX}]}
        )
    if not others:
        raise ValidationError(
            {
                "members": [
                    _(
                        "Choose at least one colleague to chat with: a chat needs someone "
                        "besides you."
                    )
                ]
            }
        )
    everyone = _sorted_people([actor, *others])
    with transaction.atomic():
        chat = TeamChat.objects.create(company_id=actor.company_id, name=name, created_by=actor)
        ChatMember.objects.bulk_create([ChatMember(chat=chat, user=user) for user in everyone])
        events.publish(
            "chat.created", chat_payload(chat, everyone), user_ids=[u.pk for u in everyone]
        )
    logger.info("chats: created chat=%s members=%d by=%s", chat.pk, len(everyone), actor.pk)
    return chat


def leave_chat(actor, chat: TeamChat) -> None:
    """The actor leaves. The others get `chat.updated`; the actor's pages get `chat.left`
    so the chat drops from their list. The last one out deletes the chat."""
    with transaction.atomic():
        _lock_chat(chat.pk)
        removed, _ = ChatMember.objects.filter(chat_id=chat.pk, user_id=actor.pk).delete()
        if not removed:
            raise NotAMember("You are not a member of this chat.")
        remaining = _members(chat.pk)
        events.publish("chat.left", {"id": chat.pk}, user_ids=[actor.pk])
        if remaining:
            chat.updated_at = timezone.now()
            TeamChat.objects.filter(pk=chat.pk).update(updated_at=chat.updated_at)
            events.publish(
                "chat.updated", chat_payload(chat, remaining), user_ids=[u.pk for u in remaining]
            )
        else:
            delete_in_database(chat)
    logger.info(
        "chats: user=%s left chat=%s remaining=%d%s",
        actor.pk,
        chat.pk,
        len(remaining),
        "" if remaining else " (chat deleted)",
    )


def delete_chat(actor, chat: TeamChat) -> dict:
    """Delete the chat for everyone, with one SQL DELETE (the database cascades to members,
    messages and reactions). Any member may. Every member gets `chat.deleted`
    {"id", "deleted_by"}; the same dict is returned."""
    with transaction.atomic():
        _lock_chat(chat.pk, delete=True)
        member_ids = _member_ids(chat.pk)  # before the rows go
        _require_member(actor, member_ids)
        delete_in_database(chat)
        data = {"id": chat.pk, "deleted_by": actor.pk}
        events.publish("chat.deleted", data, user_ids=member_ids)
    logger.info("chats: deleted chat=%s by=%s members=%d", chat.pk, actor.pk, len(member_ids))
    return data


# ---------------------------------------------------------------- messages


def send_chat_message(actor, chat: TeamChat, body: str) -> ChatMessage:
    body = validate_chat_body(body)
    with transaction.atomic():
        _lock_chat(chat.pk)
        member_ids = _member_ids(chat.pk)
        _require_member(actor, member_ids)
        message = ChatMessage.objects.create(chat_id=chat.pk, author=actor, body=body)
        TeamChat.objects.filter(pk=chat.pk).update(updated_at=message.created_at)
        events.publish("chat.message.created", chat_message_payload(message), user_ids=member_ids)
    logger.info("chats: message=%s in chat=%s by=%s", message.pk, chat.pk, actor.pk)
    return message


def edit_chat_message(actor, message: ChatMessage, body: str) -> ChatMessage:
    """Only its author edits a message; `edited_at` is set, reactions stay."""
    body = validate_chat_body(body)
    if message.author_id != actor.pk:
        raise PermissionDenied(_("Only its author can edit a message."))
    with transaction.atomic():
        _lock_chat(message.chat_id)
        member_ids = _member_ids(message.chat_id)
        _require_member(actor, member_ids)
        if body == message.body:
            return message  # nothing changed: not an edit
        edited_at = timezone.now()
        if not ChatMessage.objects.filter(pk=message.pk).update(body=body, edited_at=edited_at):
            raise Http404("This message was deleted.")
        message.body, message.edited_at = body, edited_at
        events.publish(
            "chat.message.edited",
            chat_message_payload(message, _reactions(message.pk)),
            user_ids=member_ids,
        )
    logger.info("chats: message=%s edited by=%s", message.pk, actor.pk)
    return message


# ---------------------------------------------------------------- reactions


def add_reaction(actor, message: ChatMessage, emoji: str) -> tuple[list, bool]:
    """React; reacting twice with the same emoji changes nothing (one row, one event).

    Returns (the message's reactions, whether this call added one)."""
    emoji = validate_emoji(emoji)
    with transaction.atomic():
        _lock_chat(message.chat_id)
        member_ids = _member_ids(message.chat_id)
        _require_member(actor, member_ids)
        if not ChatMessage.objects.filter(pk=message.pk).exists():
            raise Http404("This message was deleted.")
        added = insert_unless_conflict(Reaction(message=message, user=actor, emoji=emoji))
        reactions = _reactions(message.pk)
        if added:
            events.publish(
                "reaction.added",
                reaction_event_payload(message, actor.pk, emoji, reactions),
                user_ids=member_ids,
            )
    return reactions, added


def remove_reaction(actor, message: ChatMessage, emoji: str) -> tuple[list, bool]:
    """Unreact; removing a reaction that is not there changes nothing.

    Returns (the message's reactions, whether this call removed one)."""
    emoji = (emoji or "").strip()
    with transaction.atomic():
        _lock_chat(message.chat_id)
        member_ids = _member_ids(message.chat_id)
        _require_member(actor, member_ids)
        removed, _ = Reaction.objects.filter(message=message, user=actor, emoji=emoji).delete()
        reactions = _reactions(message.pk)
        if removed:
            events.publish(
                "reaction.removed",
                reaction_event_payload(message, actor.pk, emoji, reactions),
                user_ids=member_ids,
            )
    return reactions, bool(removed)
