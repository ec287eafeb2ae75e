"""Reads: a user's own notifications only (another user's, or another company's, is a 404)."""

from django.db.models import IntegerField, OuterRef, Subquery
from django.http import Http404

from .models import UNREAD_COUNTED, Notification, Preference


def notifications_of(user):
    if getattr(user, "company_id", None) is None:
        return Notification.objects.none()
    return Notification.objects.filter(user=user, company_id=user.company_id).select_related(
        "actor"
    )


def get_notification(user, pk) -> Notification:
    notification = notifications_of(user).filter(pk=pk).first() if str(pk).isdigit() else None
    if notification is None:
        raise Http404("Not found.")
    return notification


def unread_count(user) -> int:
    """The user's unread notifications, counted up to UNREAD_COUNTED."""
    if not getattr(user, "is_authenticated", False) or not user.company_id:
        return 0
    return unread_of(user.pk)[:UNREAD_COUNTED].count()


def unread_of(user_id):
    """The user's unread notifications (the partial index notif_unread_idx)."""
    return Notification.objects.filter(user_id=user_id, read_at=None)


def preferences_of(user) -> Preference:
    """The user's preferences (defaults, unsaved, when never changed)."""
    return Preference.objects.filter(user=user).first() or Preference(
        user=user, company_id=user.company_id
    )


class _CountOf(Subquery):
    """How many rows a subquery gives (its LIMIT caps the count)."""

    template = "(SELECT count(*) FROM (%(subquery)s) AS counted)"
    output_field = IntegerField()


def bell_state(user) -> tuple[int, bool]:
    """(unread count up to UNREAD_COUNTED, sound on) for the bell on every page, in one query."""
    from accounts.models import User

    unread = _CountOf(unread_of(OuterRef("pk")).values("pk")[:UNREAD_COUNTED])
    sound = Preference.objects.filter(user=OuterRef("pk")).values("sound")[:1]
    row = (
        User.objects.filter(pk=user.pk)
        .annotate(unread=unread, sound=Subquery(sound))
        .values_list("unread", "sound")
        .first()
    )
    return (row[0] or 0, bool(row[1])) if row else (0, False)
