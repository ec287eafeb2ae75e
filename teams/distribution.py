"""Lead distribution: who gets a new conversation, chosen per channel row (its `team` and
`distribution`, see teams.models).

- round-robin: the next of the team's available agents after the one who got the last
  conversation (by user id, wrapping around). Available: an active agent or admin of the
  team, online (a live socket, accounts.presence), not away, and under their cap of open
  conversations. Nobody available: the conversation stays unassigned.
- first responder: nobody is assigned; the first agent who replies takes it.

Race-free: an assignment locks the team's row (SELECT ... FOR UPDATE) for the choice and the
write, so concurrent new conversations of one team are assigned one after another: nobody is
given one twice, the turn moves on fairly, and the caps are counted on committed rows.
"""

import logging

from django.db import connection, transaction
from django.db.models import Count

from accounts import presence
from accounts.models import Role, User
from messaging import events
from messaging.models import Conversation
from messaging.payloads import conversation_payload
from notifications import services as notifications

from .models import Distribution, Team

logger = logging.getLogger(__name__)

ASSIGNABLE_ROLES = (Role.AGENT, Role.ADMIN)


def _people(team_id: int, company_id: int) -> list[tuple[int, int | None]]:
    """(id, cap) of the team's people who may take conversations and are online, not away."""
    rows = User.objects.filter(
        team_memberships__team_id=team_id,
        is_active=True,
        is_away=False,
        role__in=ASSIGNABLE_ROLES,
        company_id=company_id,
    ).values_list("pk", "max_open_conversations")
    online = presence.online_user_ids(company_id)
    return sorted((pk, cap) for pk, cap in rows if pk in online)


def _under_cap(people: list[tuple[int, int | None]]) -> list[int]:
    """The ids of `people` under their cap of open conversations (counted now)."""
    capped = [pk for pk, cap in people if cap is not None]
    counts = {}
    if capped:
        counts = dict(
            Conversation.objects.filter(assignee_id__in=capped, status=Conversation.Status.OPEN)
            .values_list("assignee_id")
            .annotate(open_count=Count("id"))
            .values_list("assignee_id", "open_count")
        )
    return [pk for pk, cap in people if cap is None or counts.get(pk, 0) < cap]


def candidates(team: Team) -> list[int]:
    """The ids of the team's people who could take a conversation now, in turn order."""
    return _under_cap(_people(team.pk, team.company_id))


def _next_after(people: list[int], last_id: int | None) -> int:
    for person in people:
        if last_id is None or person > last_id:
            return person
    return people[0]  # wrap around


def distribute(conversation: Conversation) -> int | None:
    """Assign a NEW conversation as its channel row says. Returns the assignee's id (None:
    not distributed, or nobody available)."""
    source = conversation.source
    if source is None or not getattr(source, "team_id", None):
        return None
    if getattr(source, "distribution", Distribution.NONE) != Distribution.ROUND_ROBIN:
        return None
    # Who is online is read before the lock (Redis; it does not need it): the lock covers
    # only the turn, the caps and the write.
    people = _people(source.team_id, conversation.company_id)
    if not people:
        logger.info(
            "distribution: conversation=%s team=%s nobody available; left unassigned",
            conversation.pk,
            source.team_id,
        )
        return None
    with transaction.atomic():
        # synchronous_commit=off, for this transaction only: the team's lock is released
        # without waiting for the commit's WAL flush, so the team's next assignment starts at
        # once (bench/distribution.py: 0.63 of undistributed throughput, 0.16-0.24 waiting
        # for the flush). Safe, because what a database crash can cost is bounded:
        # - only a PostgreSQL/OS crash within ~3 x wal_writer_delay (600 ms) of the commit
        #   loses it (an app crash does not: the commit has returned);
        # - it is lost whole (the assignee and the team's turn together, one WAL record
        #   set), never half;
        # - the conversation itself was committed durably by ingest before this runs
        #   (on_commit), so it survives unassigned, shown as "Unassigned" like when nobody
        #   is available; nothing re-distributes it, so it is never assigned twice (every
        #   assignment is a conditional UPDATE ... WHERE assignee IS NULL);
        # - whatever builds on it and commits durably (a reply, a notification) flushes the
        #   WAL up to it first, so it cannot vanish afterwards (WAL is replayed in order: a
        #   later assignment of the team survives only if this one does).
        # The one visible trace: the `conversation.assigned` event already went out, so the
        # assignee's browser shows it as theirs until its next re-fetch.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        team = (
            Team.objects.select_for_update()
            .filter(pk=source.team_id)
            .only("pk", "last_assigned_id")
            .first()
        )
        if team is None:
            return None
        available = _under_cap(people)
        if not available:
            logger.info(
                "distribution: conversation=%s team=%s everyone at their cap; left unassigned",
                conversation.pk,
                team.pk,
            )
            return None
        chosen = _next_after(available, team.last_assigned_id)
        taken = Conversation.objects.filter(pk=conversation.pk, assignee__isnull=True).update(
            assignee_id=chosen
        )
        if not taken:  # someone assigned it meanwhile
            return None
        Team.objects.filter(pk=team.pk).update(last_assigned_id=chosen)
        conversation.assignee_id = chosen
        events.publish(
            "conversation.assigned", conversation_payload(conversation), conversation=conversation
        )
        # The lead's new owner is told, as when a person assigns it (after this commit).
        notifications.conversations_assigned(None, [conversation])
    logger.info(
        "distribution: conversation=%s team=%s to user=%s", conversation.pk, team.pk, chosen
    )
    return chosen


def take_on_first_reply(conversation_id: int, author: User) -> bool:
    """First responder: an agent's reply on an unassigned conversation of such a channel row
    makes them its assignee (the first one only: a conditional UPDATE)."""
    conversation = Conversation.objects.filter(pk=conversation_id).first()
    if conversation is None or conversation.assignee_id is not None:
        return False
    source = conversation.source
    if getattr(source, "distribution", None) != Distribution.FIRST_RESPONDER:
        return False
    if author.role not in ASSIGNABLE_ROLES:
        return False
    with transaction.atomic():
        taken = Conversation.objects.filter(pk=conversation_id, assignee__isnull=True).update(
            assignee=author
        )
        if not taken:
            return False
        conversation.assignee = author
        events.publish(
            "conversation.assigned", conversation_payload(conversation), conversation=conversation
        )
    logger.info(
        "distribution: conversation=%s taken by first responder=%s", conversation_id, author.pk
    )
    return True
