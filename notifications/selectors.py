"""Reads: a user's own notifications only (another user's, or another company's, is a 404)."""

from django.http import Http404

from .models import Notification, Preference


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
    if not getattr(user, "is_authenticated", False) or not user.company_id:
        return 0
    return Notification.objects.filter(user=user, read_at=None).count()


def preferences_of(user) -> Preference:
    """The user's preferences (defaults, unsaved, when never changed)."""
    return Preference.objects.filter(user=user).first() or Preference(
        user=user, company_id=user.company_id
    )


def bell_state(user) -> tuple[int, bool]:
    """(unread count, sound on) for the bell on every page, in one query."""
    from django.db.models import Count, IntegerField, OuterRef, Subquery

    from accounts.models import User

    unread = (
        Notification.objects.filter(user=OuterRef("pk"), read_at=None)
        .values("user")
        .annotate(count=Count("*"))
        .values("count")
    )
    sound = Preference.objects.filter(user=OuterRef("pk")).values("sound")[:1]
    row = (
        User.objects.filter(pk=user.pk)
        .annotate(unread=Subquery(unread, output_field=IntegerField()), sound=Subquery(sound))
        .values_list("unread", "sound")
        .first()
    )
    return (row[0] or 0, bool(row[1])) if row else (0, False)
