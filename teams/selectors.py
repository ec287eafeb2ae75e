"""Reads for the Members and Teams pages and API, scoped to the actor's company."""

from django.db.models import Count, Q

from accounts import presence
from accounts.models import User
from accounts.scoping import get_scoped_or_404, scoped
from messaging.models import Conversation

from .models import Invitation, Team


def members(actor):
    """The company's people with their open conversations counted, and `presence` set."""
    people = list(
        scoped(User, actor)
        .annotate(
            open_count=Count(
                "assigned_conversations",
                filter=Q(assigned_conversations__status=Conversation.Status.OPEN),
            )
        )
        .prefetch_related("teams")
        .order_by("-is_active", "username")
    )
    online = presence.online_user_ids(actor.company_id)
    for person in people:
        person.presence = presence.status_of(person, online)
    return people


def get_member(actor, pk) -> User:
    return get_scoped_or_404(User, actor, pk=pk)


def pending_invitations(actor):
    return scoped(Invitation, actor).filter(accepted_at__isnull=True).select_related("invited_by")


def get_invitation(actor, pk) -> Invitation:
    return get_scoped_or_404(Invitation, actor, pk=pk)


def teams(actor):
    return scoped(Team, actor).prefetch_related("members").order_by("name")


def get_team(actor, pk) -> Team:
    return get_scoped_or_404(Team, actor, pk=pk)
