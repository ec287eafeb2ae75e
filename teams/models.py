"""Teams of a company, invitations of new members, and what lead distribution and business
hours keep. Channel rows (numbers, accounts, mailboxes) point at a team with `team_field()`
and choose how their new conversations are assigned with `distribution_field()`."""

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Role
from accounts.scoping import TenantManager


class Distribution(models.TextChoices):
    NONE = "none", _("None (assign by hand)")
    ROUND_ROBIN = "round_robin", _("Round-robin among the team's available agents")
    FIRST_RESPONDER = "first_responder", _("First responder (the first agent who replies)")


def team_field():
    return models.ForeignKey(
        "teams.Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("team"),
    )


def distribution_field():
    return models.CharField(
        _("lead distribution"),
        max_length=20,
        choices=Distribution.choices,
        default=Distribution.NONE,
    )


WEEKDAYS = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)


class Team(models.Model):
    tenant_path = "company"

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(_("name"), max_length=100)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams", blank=True
    )
    # Business hours: {"0": ["09:00", "18:00"], ...} by weekday (Monday 0); a day missing is
    # closed. Outside them, with `hours_enabled`, new messages get `away_message` once a day.
    hours_enabled = models.BooleanField(_("business hours"), default=False)
    timezone = models.CharField(_("time zone"), max_length=64, default="UTC")
    hours = models.JSONField(default=dict, blank=True)
    away_message = models.TextField(_("away reply"), blank=True)
    # Round-robin: who got the last conversation (the next one goes to the next member by id).
    last_assigned = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="team_unique_name"),
        ]

    def __str__(self):
        return self.name


class TeamMembership(models.Model):
    tenant_path = "team__company"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="team_memberships"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="team_membership_unique"),
        ]

    def __str__(self):
        return f"{self.user_id} in {self.team_id}"


def hash_invitation(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class Invitation(models.Model):
    """A way in for a new member: by email (a mail with the link) or a link to copy. Only the
    link's SHA-256 is stored; it works once, until `expires_at`."""

    tenant_path = "company"

    company = models.ForeignKey(
        "accounts.Company", on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(_("email"), blank=True)
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.AGENT)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = TenantManager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.email or f"link {self.pk}"

    @staticmethod
    def new_key() -> str:
        return "inv_" + secrets.token_urlsafe(32)

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()

    @property
    def state(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        return "pending" if self.expires_at > timezone.now() else "expired"


class AwayReply(models.Model):
    """An away reply sent to a conversation on a day (in the team's time zone): at most one
    per conversation per day, by this unique row."""

    tenant_path = "conversation__company"

    conversation = models.ForeignKey(
        "messaging.Conversation", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "day"], name="away_reply_once_a_day"),
        ]

    def __str__(self):
        return f"away reply {self.conversation_id} {self.day}"
