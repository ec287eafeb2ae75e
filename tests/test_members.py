"""Settings → Members: invite (mail or link) → accept → logged in → role limits; roles;
deactivation ends sessions, tokens and sockets at once; password reset by mail; the read-only
supervisor; agents who see only their conversations; a deactivated company is locked out."""

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Role, User
from crm.asgi import application
from messaging.models import Conversation
from messaging.services import SourceInactive, ingest_inbound
from teams import services
from teams.models import Invitation

from .factories import (
    PASSWORD,
    ConversationFactory,
    MessageFactory,
    UserFactory,
    WhatsAppNumberFactory,
)
from .test_pipeline import SENDER

NEW_PASSWORD = "a-very-new-password-42"


def _link_in(text: str) -> str:
    return re.search(r"https?://\S+", text).group(0)


def _logs_in(client, username, password) -> bool:
    response = client.post(reverse("login"), {"username": username, "password": password})
    return response.status_code == 302


def _path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


# ---------------------------------------------------------------- invitations


@pytest.mark.django_db
def test_invite_by_email_then_accept_logs_in_with_the_role_and_the_link_is_spent(
    client, admin_user
):
    client.force_login(admin_user)
    response = client.post(reverse("members"), {"email": "Nina@Example.com", "role": "agent"})
    assert response.status_code == 200
    assert "Invitation sent to nina@example.com" in response.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["nina@example.com"]
    link = _link_in(mail.outbox[0].body)
    client.logout()

    page = client.get(_path(link))
    assert page.status_code == 200 and "Join Acme" in page.content.decode()
    # Bad input names the field and writes nothing.
    bad = client.post(
        _path(link),
        {"username": "nina", "password": "short", "password_again": "short"},
    )
    assert bad.status_code == 200 and "too short" in bad.content.decode()
    assert not User.objects.filter(username="nina").exists()

    response = client.post(
        _path(link),
        {
            "username": "nina",
            "first_name": "Nina",
            "last_name": "Berg",
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302 and response.url == reverse("dashboard")
    nina = User.objects.get(username="nina")
    assert nina.company == admin_user.company and nina.role == Role.AGENT
    assert nina.email == "nina@example.com"
    assert client.get(reverse("dashboard")).status_code == 200  # logged in
    # An agent cannot manage members (page and API).
    assert client.get(reverse("members")).status_code == 403
    api = APIClient()
    api.force_authenticate(nina)
    assert api.get("/api/v1/members/").status_code == 403
    assert api.post("/api/v1/invitations/", {"email": "x@example.com"}).status_code == 403
    # The link worked once.
    client.logout()
    again = client.get(_path(link))
    assert again.status_code == 404 and "cannot be used" in again.content.decode()
    # And logging in with the chosen password works.
    assert _logs_in(client, "nina", NEW_PASSWORD)


@pytest.mark.django_db
def test_a_link_invitation_is_shown_once_and_expires(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("members"), {"email": "", "role": "supervisor"})
    content = response.content.decode()
    assert 'data-role="invite-link"' in content and not mail.outbox
    link = re.search(r'id="invite-link"[^>]*value="([^"]+)"', content) or re.search(
        r'value="([^"]+)"[^>]*id="invite-link"', content
    )
    link = re.search(r'value="(http[^"]+/invite/[^"]+)"', content).group(1)
    assert "/invite/" in link
    assert Invitation.objects.get().role == Role.SUPERVISOR
    assert link not in client.get(reverse("members")).content.decode()  # shown once
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client.logout()
    assert client.get(_path(link)).status_code == 404


@pytest.mark.django_db
def test_invitation_api_returns_the_link_once_and_rejects_bad_input(admin_api, admin_user):
    response = admin_api.post("/api/v1/invitations/", {"role": "agent"}, format="json")
    assert response.status_code == 201 and "/invite/inv_" in response.json()["link"]
    listed = admin_api.get("/api/v1/invitations/").json()["results"]
    assert "link" not in listed[0]
    assert admin_api.post(
        "/api/v1/invitations/", {"role": "boss"}, format="json"
    ).json().keys() == {"role"}
    assert admin_api.post(
        "/api/v1/invitations/", {"email": admin_user.email}, format="json"
    ).json() == {"email": ["A member of your company already has this email."]}
    invitation_id = response.json()["id"]
    assert admin_api.delete(f"/api/v1/invitations/{invitation_id}/").status_code == 204


@pytest.mark.django_db(transaction=True)
def test_two_people_accepting_one_link_at_once_make_one_member(admin_user):
    import threading

    invitation, link = services.invite(admin_user, base_url="http://testserver/")
    raw = link.rsplit("/invite/", 1)[1].strip("/")
    results = []

    def accept(name):
        try:
            results.append(services.accept_invitation(raw, username=name, password=NEW_PASSWORD))
        except Exception as error:  # noqa: BLE001
            results.append(error)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=accept, args=(f"twin{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(result, User) for result in results) == 1
    assert User.objects.filter(username__startswith="twin").count() == 1


# ---------------------------------------------------------------- roles and members


@pytest.mark.django_db
def test_admin_sets_roles_and_caps_but_not_their_own_role(admin_api, admin_user, agent_user):
    url = f"/api/v1/members/{agent_user.pk}/"
    response = admin_api.patch(url, {"role": "supervisor", "max_open_conversations": 3})
    assert response.status_code == 200
    assert response.json()["role"] == "supervisor" and response.json()["presence"] == "offline"
    agent_user.refresh_from_db()
    assert agent_user.role == Role.SUPERVISOR and agent_user.max_open_conversations == 3
    own = admin_api.patch(f"/api/v1/members/{admin_user.pk}/", {"role": "agent"})
    assert own.status_code == 400 and "role" in own.json()
    assert admin_api.patch(url, {"role": "owner"}).status_code == 400


@pytest.mark.django_db
def test_members_page_changes_a_role(client, admin_user, agent_user):
    client.force_login(admin_user)
    page = client.get(reverse("members")).content.decode()
    assert f'data-member="{agent_user.username}"' in page
    response = client.post(
        reverse("member_update", args=[agent_user.pk]),
        {"role": "admin", "max_open_conversations": ""},
    )
    assert response.status_code == 302
    agent_user.refresh_from_db()
    assert agent_user.role == Role.ADMIN and agent_user.max_open_conversations is None


@pytest.mark.django_db
def test_password_reset_mails_a_link_that_sets_a_new_password_once(client, admin_user, agent_user):
    client.force_login(admin_user)
    client.post(reverse("member_reset_password", args=[agent_user.pk]))
    assert mail.outbox[0].to == [agent_user.email]
    link = _path(_link_in(mail.outbox[0].body))
    client.logout()
    form_page = client.get(link, follow=True)  # Django swaps the token for a session marker
    assert b"Choose a new password" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert done.status_code == 302
    assert _logs_in(client, agent_user.username, NEW_PASSWORD)
    client.logout()
    assert b"cannot be used" in client.get(link, follow=True).content  # used up


# ---------------------------------------------------------------- deactivation


async def _open(path="/ws/", headers=None):
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["event"] == "welcome"
    return communicator


async def _closed_with(communicator) -> int | None:
    while True:
        output = await communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            return output.get("code")


def _committed(function, *args, **kwargs):
    def run():
        with transaction.atomic():
            return function(*args, **kwargs)

    return sync_to_async(run)()


@pytest.mark.django_db(transaction=True)
def test_deactivating_a_member_ends_their_session_tokens_and_sockets_at_once(client, admin_user):
    member = UserFactory(company=admin_user.company, role=Role.AGENT)
    _token, raw = ApiToken.issue(member, "script")
    client.force_login(member)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/conversations/").status_code == 200

    async def run():
        by_session = await _open(headers=[cookie])
        by_token = await _open(f"/ws/?token={raw}")
        await _committed(services.update_member, admin_user, member, is_active=False)
        assert await _closed_with(by_session) == 4401
        assert await _closed_with(by_token) == 4401

    async_to_sync(run)()
    assert client.get(reverse("inbox")).status_code == 302  # back to the login page
    assert api.get("/api/v1/conversations/").status_code == 401
    assert not ApiToken.objects.filter(user=member).exists()
    assert not _logs_in(client, member.username, PASSWORD)


@pytest.mark.django_db(transaction=True)
def test_a_deactivated_company_is_locked_out_everywhere(client, company, admin_user):
    from accounts.selectors import forget_company_states

    number = WhatsAppNumberFactory(company=company)
    _token, raw = ApiToken.issue(admin_user, "script")
    client.force_login(admin_user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    def deactivate():
        company.is_active = False
        company.save()

    async def run():
        socket = await _open(f"/ws/?token={raw}")
        by_session = await _open(headers=[cookie])
        await _committed(deactivate)
        assert await _closed_with(socket) == 4401
        assert await _closed_with(by_session) == 4401
        refused = WebsocketCommunicator(application, "/ws/", headers=[cookie])
        await refused.connect(timeout=5)
        assert await _closed_with(refused) == 4401

    async_to_sync(run)()
    forget_company_states()
    # Pages: logged out with a sentence; log-in refused with it.
    response = client.get(reverse("inbox"), follow=True)
    assert "account is deactivated" in response.content.decode()
    login = client.post(reverse("login"), {"username": admin_user.username, "password": PASSWORD})
    assert login.status_code == 200
    assert "account is deactivated" in login.content.decode()
    # API: a token no longer authenticates; a session is refused.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/conversations/").status_code == 401
    session_api = APIClient()
    session_api.force_authenticate(admin_user)
    assert session_api.get("/api/v1/conversations/").status_code == 403
    # Workers: nothing is ingested for it.
    with pytest.raises(SourceInactive):
        ingest_inbound(number, "+4915199999999", "wamid.off", SENDER, "Hello?")
    assert not Conversation.objects.filter(company=company).exists()


@pytest.mark.django_db
def test_listeners_of_a_deactivated_company_are_not_started(company):
    from channels_integrations.email.imap import due_accounts

    from .factories import EmailAccountFactory

    account = EmailAccountFactory(company=company)
    assert account.pk in list(due_accounts())
    company.is_active = False
    company.save()
    assert account.pk not in list(due_accounts())


# ---------------------------------------------------------------- the supervisor


@pytest.mark.django_db
def test_a_supervisor_reads_everything_and_changes_nothing(client, api_for, company, agent_user):
    supervisor = UserFactory(company=company, role=Role.SUPERVISOR)
    conversation = ConversationFactory(company=company, assignee=agent_user)
    MessageFactory(conversation=conversation)
    api = api_for(supervisor)
    assert api.get("/api/v1/conversations/").json()["results"][0]["id"] == conversation.pk
    assert api.get(f"/api/v1/conversations/{conversation.pk}/").status_code == 200
    writes = [
        api.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"body": "hi"}),
        api.patch(f"/api/v1/conversations/{conversation.pk}/", {"status": "closed"}),
        api.post("/api/v1/clients/", {"name": "X"}),
        api.post("/api/v1/teams/", {"name": "X"}),
    ]
    assert [response.status_code for response in writes] == [403, 403, 403, 403]
    assert "Supervisors can read" in writes[0].json()["detail"]
    # Their own API tokens they may manage.
    assert api.post("/api/v1/tokens/", {"name": "mine"}).status_code == 201

    client.force_login(supervisor)
    assert client.get(reverse("conversation_detail", args=[conversation.pk])).status_code == 200
    assert client.get(reverse("inbox")).status_code == 200
    reply = client.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "hi"})
    assert reply.status_code == 403
    assert (
        client.post(reverse("conversation_status", args=[conversation.pk]), {"status": "closed"})
    ).status_code == 403
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.messages.count() == 1
    # Their own away toggle still works.
    assert client.post(reverse("presence_away"), {"away": "1"}).status_code == 302
    supervisor.refresh_from_db()
    assert supervisor.is_away


@pytest.mark.django_db
def test_a_supervisor_sees_members_read_only_and_agents_not_at_all(
    client, api_for, company, admin_user, agent_user
):
    supervisor = UserFactory(company=company, role=Role.SUPERVISOR, username="sue")
    client.force_login(admin_user)
    client.post(reverse("members"), {"email": "", "role": "agent"})  # a pending invitation
    client.force_login(supervisor)
    page = client.get(reverse("members"))
    html = page.content.decode()
    assert page.status_code == 200
    assert agent_user.username in html and admin_user.username in html
    assert 'data-role="read-only-note"' in html and 'data-role="invitations"' in html
    # No invite, role, deactivate, reset or withdraw controls.
    for control in (
        'data-role="invite-form"',
        'name="role"',
        "reset-password",
        "/active/",
        "withdraw",
        "visibility",
    ):
        assert control not in html, control
    assert f'href="{reverse("members")}"' in client.get(reverse("teams")).content.decode()
    # Every write answers 403 and changes nothing.
    invitation = Invitation.objects.get(company=company)
    posts = [
        client.post(reverse("members"), {"email": "x@example.com", "role": "agent"}),
        client.post(reverse("member_update", args=[agent_user.pk]), {"role": "admin"}),
        client.post(reverse("member_active", args=[agent_user.pk]), {"active": "0"}),
        client.post(reverse("member_reset_password", args=[agent_user.pk])),
        client.post(reverse("invitation_withdraw", args=[invitation.pk])),
        client.post(reverse("visibility_update"), {"agents_see_all_conversations": "own"}),
    ]
    assert [response.status_code for response in posts] == [403] * 6
    agent_user.refresh_from_db()
    assert agent_user.role == Role.AGENT and agent_user.is_active
    assert Invitation.objects.filter(company=company).count() == 1 and not mail.outbox
    # The API alike: reads yes, writes 403.
    api = api_for(supervisor)
    assert {m["username"] for m in api.get("/api/v1/members/").json()["results"]} >= {"sue"}
    assert api.get("/api/v1/invitations/").status_code == 200
    assert api.patch(f"/api/v1/members/{agent_user.pk}/", {"role": "admin"}).status_code == 403
    assert api.post(f"/api/v1/members/{agent_user.pk}/reset-password/").status_code == 403
    assert api.post("/api/v1/invitations/", {"email": "", "role": "agent"}).status_code == 403
    # Agents still get 403 for the page and the API.
    client.force_login(agent_user)
    assert client.get(reverse("members")).status_code == 403
    assert api_for(agent_user).get("/api/v1/members/").status_code == 403


# ---------------------------------------------------------------- visibility


@pytest.mark.django_db
def test_agents_who_see_only_their_own_get_404_for_the_others(
    client, api_for, company, admin_user, agent_user
):
    colleague = UserFactory(company=company)
    mine = ConversationFactory(company=company, assignee=agent_user)
    unassigned = ConversationFactory(company=company)
    theirs = ConversationFactory(company=company, assignee=colleague)
    message = MessageFactory(conversation=theirs)
    api = api_for(agent_user)
    listed = {row["id"] for row in api.get("/api/v1/conversations/").json()["results"]}
    assert listed == {mine.pk, unassigned.pk, theirs.pk}  # the default: everyone sees all

    services.set_conversation_visibility(admin_user, False)
    agent_user.refresh_from_db()
    api = api_for(agent_user)
    listed = {row["id"] for row in api.get("/api/v1/conversations/").json()["results"]}
    assert listed == {mine.pk, unassigned.pk}
    assert api.get(f"/api/v1/conversations/{theirs.pk}/").status_code == 404
    assert api.get(f"/api/v1/conversations/{theirs.pk}/messages/").status_code == 404
    assert (
        api.post(f"/api/v1/conversations/{theirs.pk}/messages/", {"body": "x"}).status_code == 404
    )
    client.force_login(agent_user)
    assert client.get(reverse("conversation_detail", args=[theirs.pk])).status_code == 404
    assert str(message.body) not in client.get(reverse("inbox")).content.decode()
    # Admins (and supervisors) still see everything.
    admin_ids = {
        row["id"] for row in api_for(admin_user).get("/api/v1/conversations/").json()["results"]
    }
    assert theirs.pk in admin_ids


@pytest.mark.django_db(transaction=True)
def test_an_agent_who_cannot_see_a_conversation_hears_none_of_its_events(
    company, admin_user, agent_user
):
    from messaging.services import assign_conversation

    company.agents_see_all_conversations = False
    company.save()
    colleague = UserFactory(company=company)
    number = WhatsAppNumberFactory(company=company)
    agent_raw = ApiToken.issue(agent_user, "ws")[1]
    admin_raw = ApiToken.issue(admin_user, "ws")[1]

    async def next_event(socket):
        # Notifications (assigned to me, new message) are their own test's subject here.
        while (event := await socket.receive_json_from(timeout=5))["event"] == (
            "notification.created"
        ):
            pass
        return event

    async def run():
        agent = await _open(f"/ws/?token={agent_raw}")
        admin = await _open(f"/ws/?token={admin_raw}")
        first = await sync_to_async(ingest_inbound)(number, "+4915100000001", "m1", SENDER, "A")
        # Unassigned: everyone hears it.
        assert (await next_event(agent))["event"] == "message.created"
        assert (await next_event(agent))["event"] == "conversation.updated"
        assert (await next_event(admin))["event"] == "message.created"
        assert (await next_event(admin))["event"] == "conversation.updated"
        conversation = first.conversation
        await _committed(assign_conversation, admin_user, conversation, colleague)
        assert (await next_event(admin))["event"] == "conversation.assigned"
        await sync_to_async(ingest_inbound)(number, "+4915100000001", "m2", SENDER, "secret")
        assert (await next_event(admin))["data"]["body"] == "secret"
        assert (await next_event(admin))["event"] == "conversation.updated"
        assert await agent.receive_nothing(timeout=0.5)  # the colleague's conversation now
        await _committed(assign_conversation, admin_user, conversation, agent_user)
        assert (await next_event(agent))["event"] == "conversation.assigned"
        await sync_to_async(ingest_inbound)(number, "+4915100000001", "m3", SENDER, "yours")
        assert (await next_event(agent))["data"]["body"] == "yours"
        await agent.disconnect()
        await admin.disconnect()

    async_to_sync(run)()


@pytest.mark.django_db(transaction=True)
def test_changing_visibility_makes_open_sockets_reconnect(company, admin_user, agent_user):
    raw = ApiToken.issue(agent_user, "ws")[1]

    async def run():
        socket = await _open(f"/ws/?token={raw}")
        await _committed(services.set_conversation_visibility, admin_user, False)
        assert await _closed_with(socket) == 4001  # the client reconnects at once

    async_to_sync(run)()


# ---------------------------------------------------------------- tenancy


@pytest.mark.django_db
def test_another_companys_members_and_invitations_are_404(client, admin_user, other_company):
    stranger = UserFactory(company=other_company)
    invitation, _link = services.invite(
        UserFactory(company=other_company, role=Role.ADMIN), base_url="http://testserver/"
    )
    client.force_login(admin_user)
    for url in (
        reverse("member_update", args=[stranger.pk]),
        reverse("member_active", args=[stranger.pk]),
        reverse("member_reset_password", args=[stranger.pk]),
        reverse("invitation_withdraw", args=[invitation.pk]),
    ):
        assert client.post(url, {"role": "admin", "active": "0"}).status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active and stranger.role == Role.AGENT
    assert Invitation.objects.filter(pk=invitation.pk).exists()
    assert stranger.username not in client.get(reverse("members")).content.decode()


# ---------------------------------------------------------------- the role matrix, exhaustive

# Write endpoints an agent may reach (each a path prefix of the schema). Every other write
# endpoint must refuse an agent with 403 before anything is looked up, so a new admin-only
# endpoint cannot ship without deciding who may call it.
AGENT_WRITES = {
    "/api/v1/conversations/": "replies, notes, status, assignment (what they see)",
    "/api/v1/chats/": "team chat between colleagues",
    "/api/v1/clients/": "clients are everyone's work: edit, label, merge, import",
    "/api/v1/deals/": "deals they work on",
    "/api/v1/pipelines/": "the deal boards they work on (no admin check today)",
    "/api/v1/labels/": "admins only, refused by triage.services after validation",
    "/api/v1/canned-replies/": "their own replies; the company's refused by canned.services",
    "/api/v1/saved-views/": "their own saved inbox filters",
    "/api/v1/exports/": "exports of what they can see",
    "/api/v1/tokens/": "their own API tokens",
    "/api/v1/me/": "their own presence",
    "/api/v1/notifications/": "their own notifications",
    "/api/v1/attachments/": "retrying a download in a conversation they see",
    "/api/v1/whatsapp/numbers/{id}/send/": "a template to a client, from a number they may use",
}


def _write_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    return [
        (method, path)
        for path, operations in sorted(paths.items())
        for method in ("post", "put", "patch", "delete")
        if method in operations
    ]


@pytest.mark.django_db
def test_every_write_endpoint_refuses_an_agent_unless_listed(api_for, agent_user):
    api = api_for(agent_user)
    allowed, refused = set(), []
    for method, path in _write_endpoints():
        prefix = next((p for p in AGENT_WRITES if path.startswith(p)), None)
        if prefix is not None:
            allowed.add(prefix)
            continue
        url = re.sub(r"\{[^}]+\}", "999999999", path)  # no such row: the role decides first
        response = getattr(api, method)(url, {}, format="json")
        if response.status_code != 403:
            refused.append(f"{method.upper()} {path} → {response.status_code}")
    assert refused == [], "agents reach these: answer 403 or add them to AGENT_WRITES"
    assert allowed == set(AGENT_WRITES), "AGENT_WRITES names endpoints the API no longer has"
