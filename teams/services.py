"""Writes for members, invitations and teams. Every function takes the acting user first and
checks that they may (company admins), raising PermissionDenied or ValidationError naming the
field; nothing is half-written (one transaction each)."""

import logging
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _

from accounts import presence
from accounts.models import ApiToken, Company, Role, User
from accounts.scoping import scoped

from .models import Invitation, Team, TeamMembership, hash_invitation

logger = logging.getLogger(__name__)


def _require_admin(actor: User) -> None:
    if not actor.is_company_admin:
        raise PermissionDenied(_("Only company admins can manage members and teams."))


def _check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError({"role": [_("Choose one of: %s.") % ", ".join(Role.values)]})
    return role


# ---------------------------------------------------------------- invitations


def invite(actor: User, *, email: str = "", role: str = Role.AGENT, base_url: str) -> tuple:
    """A new invitation: with `email`, a mail with the link goes there; without, the link is
    for the admin to copy. Returns (invitation, link); the link is shown once."""
    _require_admin(actor)
    _check_role(role)
    email = (email or "").strip().lower()
    if email and scoped(User, actor).filter(email__iexact=email, is_active=True).exists():
        raise ValidationError({"email": [_("A member of your company already has this email.")]})
    raw = Invitation.new_key()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            company_id=actor.company_id,
            email=email,
            role=role,
            key_hash=hash_invitation(raw),
            invited_by=actor,
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_DAYS),
        )
    link = base_url.rstrip("/") + reverse("invitation_accept", args=[raw])
    if email:
        send_mail(
            _("You are invited to %(company)s on Switchboard") % {"company": actor.company.name},
            _(
                "%(name)s invited you to join %(company)s on Switchboard as %(role)s.\n\n"
                "Choose your name and password here (the link works once, for %(days)d days):"
                "\n%(link)s\n"
            )
            % {
                "name": actor.display_name,
                "company": actor.company.name,
                "role": invitation.get_role_display(),
                "days": settings.INVITATION_DAYS,
                "link": link,
            },
            None,
            [email],
        )
    logger.info(
        "invitation id=%s company=%s by=%s (%s)",
        invitation.pk,
        actor.company_id,
        actor.pk,
        "mailed" if email else "link",
    )
    return invitation, link


def usable_invitation(raw: str) -> Invitation | None:
    """The pending invitation of this link, or None (unknown, used or expired alike)."""
    invitation = (
        Invitation.objects.select_related("company")
        .filter(key_hash=hash_invitation(raw or ""))
        .first()
    )
    if invitation is None or not invitation.is_usable or not invitation.company.is_active:
        return None
    return invitation


def accept_invitation(
    raw: str, *, username: str, password: str, first_name: str = "", last_name: str = ""
) -> User:
    """Create the member of an invitation (once): the link is spent in the same transaction."""
    username = (username or "").strip()
    if not username:
        raise ValidationError({"username": [_("Choose a username.")]})
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(key_hash=hash_invitation(raw or ""))
            .first()
        )
        if invitation is None or not invitation.is_usable:
            raise ValidationError(
                {"invitation": [_("This invitation link is used, expired or unknown.")]}
            )
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError({"username": [_("This username is taken; choose another.")]})
        user = User(
            company_id=invitation.company_id,
            username=username,
            first_name=(first_name or "").strip()[:150],
            last_name=(last_name or "").strip()[:150],
            email=invitation.email,
            role=invitation.role,
        )
        try:
            password_validation.validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password": error.messages}) from None
        user.set_password(password)
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            raise ValidationError(
                {"username": [_("This username is taken; choose another.")]}
            ) from None
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    logger.info("invitation id=%s accepted by user=%s", invitation.pk, user.pk)
    return user


def withdraw_invitation(actor: User, invitation: Invitation) -> None:
    _require_admin(actor)
    invitation.delete()


# ---------------------------------------------------------------- members


def update_member(
    actor: User,
    member: User,
    *,
    role: str | None = None,
    is_active: bool | None = None,
    max_open_conversations: int | None | type(...) = ...,
) -> User:
    """Change a member's role, cap, or whether they may log in. A deactivated member's
    sessions, API tokens and sockets end at once (accounts.revocation)."""
    _require_admin(actor)
    if member.company_id != actor.company_id:
        raise PermissionDenied(_("Not a member of your company."))
    fields = []
    if role is not None and role != member.role:
        _check_role(role)
        if member.pk == actor.pk:
            raise ValidationError({"role": [_("You cannot change your own role.")]})
        member.role = role
        fields.append("role")
    if is_active is not None and is_active != member.is_active:
        if member.pk == actor.pk:
            raise ValidationError({"is_active": [_("You cannot deactivate yourself.")]})
        member.is_active = is_active
        fields.append("is_active")
    if max_open_conversations is not ...:
        if max_open_conversations is not None and max_open_conversations < 0:
            raise ValidationError({"max_open_conversations": [_("Must be 0 or more.")]})
        member.max_open_conversations = max_open_conversations
        fields.append("max_open_conversations")
    if not fields:
        return member
    with transaction.atomic():
        member.save(update_fields=fields)
        if "is_active" in fields and not member.is_active:
            # Their tokens die (each deletion closes its sockets); the sessions die with
            # is_active (the auth backend refuses inactive users on every request).
            for token in ApiToken.objects.filter(user=member):
                token.delete()
    logger.info("member=%s changed %s by=%s", member.pk, ",".join(fields), actor.pk)
    return member


def send_password_reset(actor: User, member: User, *, base_url: str) -> None:
    """Mail the member a link to choose a new password (Django's reset tokens: one use, and
    they stop working once the password changes)."""
    _require_admin(actor)
    if member.company_id != actor.company_id:
        raise PermissionDenied(_("Not a member of your company."))
    if not member.email:
        raise ValidationError({"email": [_("This member has no email address to send it to.")]})
    if not member.is_active:
        raise ValidationError({"is_active": [_("Reactivate the member first.")]})
    uid = urlsafe_base64_encode(force_bytes(member.pk))
    token = default_token_generator.make_token(member)
    link = base_url.rstrip("/") + reverse("password_reset_confirm", args=[uid, token])
    send_mail(
        _("Choose a new Switchboard password"),
        _(
            "%(name)s asked Switchboard to send you a link to choose a new password for "
            "%(company)s (your username: %(username)s):\n%(link)s\n"
        )
        % {
            "name": actor.display_name,
            "company": actor.company.name,
            "username": member.username,
            "link": link,
        },
        None,
        [member.email],
    )
    logger.info("password reset mailed member=%s by=%s", member.pk, actor.pk)


def set_conversation_visibility(actor: User, agents_see_all: bool) -> Company:
    """Whether agents see every conversation or only theirs and the unassigned ones. Open
    sockets reconnect and hear only what they now may (accounts.revocation)."""
    _require_admin(actor)
    company = actor.company
    if company.agents_see_all_conversations != agents_see_all:
        company.agents_see_all_conversations = agents_see_all
        with transaction.atomic():
            company.save(update_fields=["agents_see_all_conversations"])
        logger.info("company=%s agents_see_all=%s by=%s", company.pk, agents_see_all, actor.pk)
    return company


def set_away(user: User, away: bool) -> User:
    """The person's own "away" (the navigation's toggle): no new conversations while away."""
    if user.is_away != away:
        user.is_away = away
        with transaction.atomic():
            user.save(update_fields=["is_away"])
            transaction.on_commit(lambda: presence.publish_change(user), robust=True)
    return user


# ---------------------------------------------------------------- teams


def _clean_hours(hours) -> dict:
    """{"0": ["09:00", "18:00"], ...}: weekday (Monday 0) to opening and closing time."""
    if hours in (None, ""):
        return {}
    if not isinstance(hours, dict):
        raise ValidationError({"hours": [_("Give opening hours by weekday (0 is Monday).")]})
    clean = {}
    for day, span in hours.items():
        if str(day) not in {str(n) for n in range(7)}:
            raise ValidationError({"hours": [_("Weekdays are 0 (Monday) to 6 (Sunday).")]})
        if not span:
            continue
        try:
            start, end = span
            start_t, end_t = (timezone.datetime.strptime(v, "%H:%M").time() for v in (start, end))
        except (TypeError, ValueError):
            raise ValidationError(
                {"hours": [_("Hours are two times like 09:00 and 18:00.")]}
            ) from None
        if start_t >= end_t:
            raise ValidationError({"hours": [_("A day's opening must come before its closing.")]})
        clean[str(day)] = [start, end]
    return clean


def _clean_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError({"timezone": [_("Unknown time zone, e.g. Europe/Berlin.")]}) from None
    return name


TEAM_FIELDS = ("name", "hours_enabled", "timezone", "hours", "away_message")


def save_team(actor: User, team: Team | None = None, *, member_ids=None, **fields) -> Team:
    """Create (team None) or change a team; `member_ids` replaces its members (active people
    of the company only)."""
    _require_admin(actor)
    team = team or Team(company_id=actor.company_id)
    if team.company_id != actor.company_id:
        raise PermissionDenied(_("Not a team of your company."))
    unknown = set(fields) - set(TEAM_FIELDS)
    if unknown:
        raise ValidationError({sorted(unknown)[0]: [_("Not a field of a team.")]})
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if not fields["name"]:
            raise ValidationError({"name": [_("Give the team a name.")]})
        clash = Team.objects.filter(company_id=actor.company_id, name__iexact=fields["name"])
        if clash.exclude(pk=team.pk).exists():
            raise ValidationError({"name": [_("Your company has a team with this name.")]})
    if "hours" in fields:
        fields["hours"] = _clean_hours(fields["hours"])
    if "timezone" in fields:
        fields["timezone"] = _clean_timezone(fields["timezone"])
    if fields.get("hours_enabled") and not (fields.get("away_message") or team.away_message):
        raise ValidationError({"away_message": [_("Write the reply sent outside business hours.")]})
    members = None
    if member_ids is not None:
        wanted = {int(pk) for pk in member_ids}
        members = list(scoped(User, actor).filter(pk__in=wanted, is_active=True))
        if len(members) != len(wanted):
            raise ValidationError({"members": [_("Choose active members of your company.")]})
    for name, value in fields.items():
        setattr(team, name, value)
    with transaction.atomic():
        team.save()
        if members is not None:
            TeamMembership.objects.filter(team=team).exclude(user__in=members).delete()
            TeamMembership.objects.bulk_create(
                [TeamMembership(team=team, user=user) for user in members],
                ignore_conflicts=True,
            )
    logger.info("team=%s saved by=%s", team.pk, actor.pk)
    return team


def delete_team(actor: User, team: Team) -> None:
    """Its channels keep working, without a team (their team is set to NULL by PostgreSQL)."""
    _require_admin(actor)
    if team.company_id != actor.company_id:
        raise PermissionDenied(_("Not a team of your company."))
    team_id = team.pk
    team.delete()
    logger.info("team=%s deleted by=%s", team_id, actor.pk)
