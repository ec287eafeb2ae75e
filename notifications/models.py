"""What each user is told about: stored (read/unread), pushed over /ws/ as
`notification.created`, shown in the bell. One row per recipient."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.scoping import TenantManager


class Kind(models.TextChoices):
    ASSIGNED = "assigned", _("Assigned to me")
    MENTIONED = "mentioned", _("Mentioned in a note")
    NEW_MESSAGE = "new_message", _("New message in a conversation assigned to me")
    SEND_FAILED = "send_failed", _("A message of mine could not be sent")
    CONNECTION_FAILED = "connection_failed", _("A connection of my company failed (admins)")
    CONNECTION_WAITING = (
        "connection_waiting",
        _("A connection of my company waits for capacity (admins)"),
    )


# Kinds only a company's admins are told about (and offered in their preferences).
ADMIN_KINDS = frozenset({Kind.CONNECTION_FAILED, Kind.CONNECTION_WAITING})

# Unread notifications are counted up to this many; the bell shows "99+" from here. A count
# reads the user's unread rows, and a busy agent who never clears them had thousands: with every
# inbound message of their conversations that count cost ~0.4 ms at 1,100 unread and ~1.3 ms at
# 3,900, against ~0.05 ms capped (bench/ingest.py, assigned conversations).
UNREAD_COUNTED = 100


def title_for(kind: str, subject: str, actor: str = "") -> str:
    values = {"subject": subject or _("a conversation"), "actor": actor or _("Someone")}
    if kind == Kind.ASSIGNED:
        if actor:
            return _("%(actor)s assigned you “%(subject)s”") % values
        return _("You were assigned “%(subject)s”") % values
    if kind == Kind.MENTIONED:
        return _("%(actor)s mentioned you in “%(subject)s”") % values
    if kind == Kind.NEW_MESSAGE:
        return _("New message in “%(subject)s”") % values
    if kind == Kind.SEND_FAILED:
        return _("Your message in “%(subject)s” was not sent") % values
    if kind == Kind.CONNECTION_FAILED:
        return _("The connection “%(subject)s” failed") % values
    if kind == Kind.CONNECTION_WAITING:
        return _("“%(subject)s” is waiting for capacity: no connection host has room") % values
    return subject


class Notification(models.Model):
    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,  # notif_user_idx leads with it
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # What it is about, as named when it happened (a conversation's client, a connection);
    # the sentence around it is written when shown, in the reader's language (`title`).
    subject = models.CharField(max_length=200, blank=True)
    body = models.CharField(max_length=300, blank=True)
    url = models.CharField(max_length=300, blank=True)  # where a click goes (a page of ours)
    conversation = models.ForeignKey(
        "messaging.Conversation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="notif_user_idx"),
            models.Index(
                fields=["user"], condition=models.Q(read_at__isnull=True), name="notif_unread_idx"
            ),
            models.Index(
                fields=["conversation"],
                condition=models.Q(conversation__isnull=False),
                name="notif_conversation_idx",
            ),
            models.Index(
                fields=["company"], name="notif_company_idx"
            ),  # the company's delete cascade
        ]

    def __str__(self):
        return self.title

    @property
    def body_words(self) -> str:
        """The body as the reader sees it (a connection's error explained in their language)."""
        from .payloads import body_words

        return body_words(self.kind, self.body)

    @property
    def title(self) -> str:
        actor = self.actor.display_name if self.actor_id and self.actor else ""
        return title_for(self.kind, self.subject, actor)


class Preference(models.Model):
    """One user's choices: which kinds to be told about, and whether a sound plays."""

    tenant_path = "company"

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    muted_kinds = models.JSONField(default=list, blank=True)  # Kind values not wanted
    sound = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantManager()

    def __str__(self):
        return f"Notification preferences of {self.user}"

    def wants(self, kind: str) -> bool:
        return kind not in (self.muted_kinds or [])


class ConnectionAlert(models.Model):
    """An open failure episode of one connection (`key`: "telegram:account:5",
    "email:imap:3", ...): its company's admins were told once; the row goes when the
    connection is healthy again, so the next failure is a new episode and is told again."""

    tenant_path = "company"

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=120, unique=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    def __str__(self):
        return self.key
