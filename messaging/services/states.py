"""A conversation's state: open / pending / snoozed / closed.

- An agent sets it (`set_conversation_status`); snoozing takes a time to wake at, or none:
  then it sleeps until the customer's next message.
- Any inbound message wakes a snoozed conversation (and reopens a pending or closed one):
  the ingest statement itself sets `open` (services/inbox.py), then announces the change.
- Beat wakes snoozed conversations whose time has come (`wake_due_conversations`).
- An agent's reply to a closed conversation reopens it (`reopen_for_reply`); the reply box
  tells the agent it did.

Every change is published after commit as `conversation.updated` (the row) and
`conversation.status_changed` (the row, the previous state and who changed it: null for the
customer or the clock).
"""

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.vocabulary import label_for

from .. import events
from ..models import Conversation
from ..payloads import conversation_payload

logger = logging.getLogger(__name__)

WAKE_BATCH = 500  # conversations woken per statement by the beat task


def publish_status_changed(conversation: Conversation, previous: str, *, actor=None) -> None:
    events.publish(
        "conversation.status_changed",
        {
            **conversation_payload(conversation),
            "previous_status": previous,
            "previous_status_label": label_for(Conversation, previous),  # lazy, per reader
            "changed_by_id": getattr(actor, "pk", None),
        },
        conversation=conversation,
    )


def validate_status(status: str, snoozed_until: datetime | None, *, now=None) -> None:
    """One ValidationError naming the field: an unknown state, a wake-up time on a state
    that is not snoozed, or a time that is not in the future."""
    if status not in Conversation.Status.values:
        raise ValidationError(
            {
                "status": [
                    _("Must be one of: %(values)s.")
                    % {"values": ", ".join(Conversation.Status.values)}
                ]
            }
        )
    if snoozed_until is None:
        return
    if status != Conversation.Status.SNOOZED:
        raise ValidationError({"snoozed_until": [_("Only a snoozed conversation has a time.")]})
    if timezone.is_naive(snoozed_until):
        raise ValidationError({"snoozed_until": [_("Give the time with its time zone.")]})
    if snoozed_until <= (now or timezone.now()):
        raise ValidationError({"snoozed_until": [_("Choose a time in the future.")]})


def set_conversation_status(
    actor, conversation: Conversation, status: str, *, snoozed_until: datetime | None = None
) -> Conversation:
    """Move the conversation to `status`; `snoozed_until` only with "snoozed" (None: until
    the customer writes)."""
    validate_status(status, snoozed_until)
    previous = conversation.status
    if previous == status and conversation.snoozed_until == snoozed_until:
        return conversation
    with transaction.atomic():
        conversation.status = status
        conversation.snoozed_until = snoozed_until
        fields = ["status", "snoozed_until", "updated_at"]
        if status == Conversation.Status.CLOSED:  # resolution time (reports)
            conversation.closed_at = timezone.now()
            fields.append("closed_at")
        conversation.save(update_fields=fields)
        events.publish(
            "conversation.updated",
            conversation_payload(conversation),
            conversation=conversation,
        )
        if previous != status:
            publish_status_changed(conversation, previous, actor=actor)
    logger.info(
        "conversation=%s status %s -> %s by=%s",
        conversation.pk,
        previous,
        status,
        getattr(actor, "pk", None),
    )
    return conversation


def reopen_for_reply(actor, conversation: Conversation) -> bool:
    """Inside the reply's transaction: a closed conversation an agent answers is open again
    (a conditional UPDATE, so two replies at once reopen it once). True when it did."""
    now = timezone.now()
    reopened = Conversation.objects.filter(
        pk=conversation.pk, status=Conversation.Status.CLOSED
    ).update(status=Conversation.Status.OPEN, updated_at=now)
    if not reopened:
        return False
    conversation.status = Conversation.Status.OPEN
    conversation.updated_at = now
    publish_status_changed(conversation, Conversation.Status.CLOSED, actor=actor)
    logger.info("conversation=%s reopened by a reply of user=%s", conversation.pk, actor.pk)
    return True


def wake_due_conversations(now: datetime | None = None) -> int:
    """Beat: snoozed conversations whose time has come are open again. Returns how many."""
    now = now or timezone.now()
    woken = 0
    while True:
        with transaction.atomic():
            due = list(
                Conversation.objects.select_for_update(skip_locked=True)
                .filter(status=Conversation.Status.SNOOZED, snoozed_until__lte=now)
                .order_by("snoozed_until")[:WAKE_BATCH]
            )
            if not due:
                break
            Conversation.objects.filter(pk__in=[c.pk for c in due]).update(
                status=Conversation.Status.OPEN, snoozed_until=None, updated_at=now
            )
            for conversation in due:
                conversation.status = Conversation.Status.OPEN
                conversation.snoozed_until = None
                events.publish(
                    "conversation.updated",
                    conversation_payload(conversation),
                    conversation=conversation,
                )
                publish_status_changed(conversation, Conversation.Status.SNOOZED)
        woken += len(due)
        if len(due) < WAKE_BATCH:
            break
    if woken:
        logger.info("snooze: woke %d conversations", woken)
    return woken
