"""Settings → Members and Teams (company admins), the invitation page (public: the link is
the credential), and the navigation's away toggle."""

from django.contrib import messages
from django.contrib.auth import login
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.views import company_member_required
from channels_integrations.views.access import company_admin_required

from . import selectors, services
from .forms import AcceptForm, InviteForm, MemberForm, TeamForm, VisibilityForm


def _base_url(request) -> str:
    return request.build_absolute_uri("/")


def _fail(request, error: ValidationError, form=None) -> None:
    """A service's ValidationError onto the form's fields (or as a message)."""
    for field, problems in error.message_dict.items():
        if form is not None and field in form.fields:
            for problem in problems:
                form.add_error(field, problem)
        else:
            for problem in problems:
                messages.error(request, problem)


@company_member_required
@never_cache  # the page after a link invitation shows the link, once
def members_page(request):
    """Admins manage members here; supervisors see the same list read-only (no forms, and
    company_member_required answers their POSTs with 403); agents get 403."""
    if not (request.user.is_company_admin or request.user.is_read_only):
        raise PermissionDenied(_("Only company admins can change this."))
    if not request.user.is_company_admin:
        return render(
            request,
            "teams/members.html",
            {
                "members": selectors.members(request.user),
                "invitations": selectors.pending_invitations(request.user),
                "read_only": True,
            },
        )
    invite_form = InviteForm(request.POST if request.method == "POST" else None)
    link = None
    if request.method == "POST" and invite_form.is_valid():
        try:
            invitation, link = services.invite(
                request.user,
                email=invite_form.cleaned_data["email"],
                role=invite_form.cleaned_data["role"],
                base_url=_base_url(request),
            )
        except ValidationError as error:
            _fail(request, error, invite_form)
        else:
            if invitation.email:
                messages.success(
                    request, _("Invitation sent to %(email)s.") % {"email": invitation.email}
                )
                link = None
            invite_form = InviteForm()
    company = request.user.company
    visibility = VisibilityForm(
        initial={
            "agents_see_all_conversations": "all" if company.agents_see_all_conversations else "own"
        }
    )
    return render(
        request,
        "teams/members.html",
        {
            "members": selectors.members(request.user),
            "invitations": selectors.pending_invitations(request.user),
            "invite_form": invite_form,
            "invite_link": link,
            "visibility_form": visibility,
            "roles": Role.choices,
        },
    )


@company_member_required
@company_admin_required
@require_POST
def member_update(request, pk):
    member = selectors.get_member(request.user, pk)
    form = MemberForm(request.POST)
    if not form.is_valid():
        for problems in form.errors.values():
            for problem in problems:
                messages.error(request, problem)
        return redirect("members")
    try:
        services.update_member(
            request.user,
            member,
            role=form.cleaned_data["role"],
            max_open_conversations=form.cleaned_data["max_open_conversations"],
        )
    except ValidationError as error:
        _fail(request, error)
    else:
        messages.success(request, _("%(name)s updated.") % {"name": member.display_name})
    return redirect("members")


@company_member_required
@company_admin_required
@require_POST
def member_active(request, pk):
    member = selectors.get_member(request.user, pk)
    activate = request.POST.get("active") == "1"
    try:
        services.update_member(request.user, member, is_active=activate)
    except ValidationError as error:
        _fail(request, error)
    else:
        text = (
            _("%(name)s can log in again.")
            if activate
            else _("%(name)s is deactivated: logged out everywhere, API tokens revoked.")
        )
        messages.success(request, text % {"name": member.display_name})
    return redirect("members")


@company_member_required
@company_admin_required
@require_POST
def member_reset_password(request, pk):
    member = selectors.get_member(request.user, pk)
    try:
        services.send_password_reset(request.user, member, base_url=_base_url(request))
    except ValidationError as error:
        _fail(request, error)
    else:
        messages.success(
            request, _("A password reset link was sent to %(email)s.") % {"email": member.email}
        )
    return redirect("members")


@company_member_required
@company_admin_required
@require_POST
def invitation_withdraw(request, pk):
    invitation = selectors.get_invitation(request.user, pk)
    services.withdraw_invitation(request.user, invitation)
    messages.success(request, _("Invitation withdrawn."))
    return redirect("members")


@company_member_required
@company_admin_required
@require_POST
def visibility_update(request):
    form = VisibilityForm(request.POST)
    if form.is_valid():
        services.set_conversation_visibility(
            request.user, form.cleaned_data["agents_see_all_conversations"]
        )
        messages.success(request, _("Conversation visibility saved."))
    return redirect("members")


@never_cache
def invitation_accept(request, key):
    """Public: whoever holds the link chooses a username, name and password, and is in."""
    invitation = services.usable_invitation(key)
    if invitation is None:
        return render(request, "teams/invitation_invalid.html", status=404)
    form = AcceptForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user = services.accept_invitation(
                key,
                username=data["username"],
                password=data["password"],
                first_name=data["first_name"],
                last_name=data["last_name"],
            )
        except ValidationError as error:
            _fail(request, error, form)
        else:
            login(request, user, backend="accounts.backends.CompanyModelBackend")
            messages.success(
                request, _("Welcome to %(company)s.") % {"company": invitation.company.name}
            )
            return redirect("dashboard")
    return render(request, "teams/invitation_accept.html", {"form": form, "invitation": invitation})


@company_member_required
def teams_page(request):
    return render(
        request,
        "teams/team_list.html",
        {"teams": selectors.teams(request.user)},
    )


def _team_form(request, team=None):
    people = [p for p in selectors.members(request.user) if p.is_active]
    initial = TeamForm.initial_for(team) if team else {}
    data = request.POST if request.method == "POST" else None
    return TeamForm(data, people=people, initial=initial)


def _save_team(request, form, team=None):
    if not form.is_valid():
        return None
    hours = form.hours()
    if form.errors:
        return None
    data = form.cleaned_data
    try:
        return services.save_team(
            request.user,
            team,
            member_ids=data["members"],
            name=data["name"],
            hours_enabled=data["hours_enabled"],
            timezone=data["timezone"],
            hours=hours,
            away_message=data["away_message"],
        )
    except ValidationError as error:
        _fail(request, error, form)
        return None


@company_member_required
@company_admin_required
def team_create(request):
    form = _team_form(request)
    if request.method == "POST" and (team := _save_team(request, form)) is not None:
        messages.success(request, _("Team “%(name)s” created.") % {"name": team.name})
        return redirect("teams")
    return render(request, "teams/team_form.html", {"form": form, "team": None})


@company_member_required
@company_admin_required
def team_edit(request, pk):
    team = selectors.get_team(request.user, pk)
    form = _team_form(request, team)
    if request.method == "POST" and _save_team(request, form, team) is not None:
        messages.success(request, _("Team “%(name)s” saved.") % {"name": team.name})
        return redirect("teams")
    return render(request, "teams/team_form.html", {"form": form, "team": team})


@company_member_required
@company_admin_required
@require_POST
def team_delete(request, pk):
    team = selectors.get_team(request.user, pk)
    services.delete_team(request.user, team)
    messages.success(request, _("Team “%(name)s” deleted.") % {"name": team.name})
    return redirect("teams")


@company_member_required
@require_POST
def presence_away(request):
    """The navigation's toggle: away (no new conversations) or back."""
    services.set_away(request.user, request.POST.get("away") == "1")
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "dashboard"
    return redirect(target)
