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

from django.db import transaction
from django.db.models import Count, Q

from accounts import presence
from accounts.models import Role, User
from messaging import events
from messaging.models import Conversation
from messaging.payloads import conversation_payload

from .models import Distribution, Team

logger = logging.getLogger(__name__)

ASSIGNABLE_ROLES = (Role.AGENT, Role.ADMIN)


def candidates(team: Team) -> list[User]:
    """The team's people who could take a conversation now, by id, each annotated with
    `open_count` (their open conversations)."""
    people = (
        User.objects.filter(
            team_memberships__team=team,
            is_active=True,
            is_away=False,
            role__in=ASSIGNABLE_ROLES,
            company_id=team.company_id,
        )
        .annotate(
            open_count=Count(
                "assigned_conversations",
                filter=Q(assigned_conversations__status=Conversation.Status.OPEN),
            )
        )
        .order_by("pk")
    )
    people = list(people)
    online = presence.online_user_ids(team.company_id)
    return [
        person
        for person in people
        if person.pk in online
        and (
            person.max_open_conversations is None
            or person.open_count < person.max_open_conversations
        )
    ]


def _next_after(people: list[User], last_id: int | None) -> User:
    for person in people:
        if last_id is None or person.pk > last_id:
            return person
    return people[0]  # wrap around


def distribute(conversation: Conversation) -> User | None:
    """Assign a NEW conversation as its channel row says. Returns the assignee (None: not
    distributed, or nobody available)."""
    source = conversation.source
    if source is None or not getattr(source, "team_id", None):
        return None
    if getattr(source, "distribution", Distribution.NONE) != Distribution.ROUND_ROBIN:
        return None
    with transaction.atomic():
        team = Team.objects.select_for_update().filter(pk=source.team_id).first()
        if team is None:
            return None
        people = candidates(team)
        if not people:
            logger.info(
                "distribution: conversation=%s team=%s nobody available; left unassigned",
                conversation.pk,
                team.pk,
            )
            return None
        chosen = _next_after(people, team.last_assigned_id)
        taken = Conversation.objects.filter(pk=conversation.pk, assignee__isnull=True).update(
            assignee=chosen
        )
        if not taken:  # someone assigned it meanwhile
            return None
        team.last_assigned = chosen
        team.save(update_fields=["last_assigned"])
        conversation.assignee = chosen
        events.publish(
            "conversation.assigned", conversation_payload(conversation), conversation=conversation
        )
    logger.info(
        "distribution: conversation=%s team=%s to user=%s", conversation.pk, team.pk, chosen.pk
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
