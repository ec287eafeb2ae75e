"""Lead distribution on the real PostgreSQL and Redis: a new conversation on a round-robin
channel goes to the next available agent of its team (online, not away, under their cap),
fairly and never twice even when many arrive at once (real threads, each on its own database
connection); first responder leaves it to the first agent who replies. Presence is real
(accounts.presence in Redis)."""

import threading
from collections import Counter

import pytest
from django.db import connection

from accounts import presence
from accounts.models import Role
from crm import coordination
from messaging.models import Conversation
from messaging.services import Sender, ingest_inbound, send_message
from messaging.services.inbox import Inbound, ingest_inbound_many
from notifications.models import Notification
from teams import distribution, services
from teams.models import Distribution, Team

from .factories import UserFactory, WhatsAppNumberFactory


@pytest.fixture
def fresh_presence(company):
    coordination.redis_client().delete(f"presence:c:{company.pk}")
    yield
    coordination.redis_client().delete(f"presence:c:{company.pk}")


def _online(*users):
    for user in users:
        presence.heartbeat(user.company_id, user.pk, f"test-socket-{user.pk}")


def _team(admin, people, **fields) -> Team:
    return services.save_team(admin, member_ids=[p.pk for p in people], name="Sales", **fields)


def _number(company, team, mode=Distribution.ROUND_ROBIN):
    return WhatsAppNumberFactory(company=company, team=team, distribution=mode)


def _routed(company, admin, count: int, **agent_fields):
    """`count` online agents in a team, and a round-robin number routing to it."""
    agents = [UserFactory(company=company, role=Role.AGENT, **agent_fields) for _ in range(count)]
    _online(*agents)
    return agents, _number(company, _team(admin, agents))


def _sender(n: int) -> Sender:
    phone = f"+49151{n:07d}"
    return Sender(address=phone, name=f"Lead {n}", phone=phone)


def _ingest_concurrently(number, count: int, threads: int = 6) -> None:
    """`count` new conversations from `threads` threads at once (each its own connection)."""
    barrier = threading.Barrier(threads)
    errors = []

    def work(offset):
        try:
            barrier.wait()
            for n in range(offset, count, threads):
                ingest_inbound(number, f"lead-{n}", f"m-{n}", _sender(n), "Hello, price?")
        except Exception as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors


@pytest.mark.django_db(transaction=True)
def test_round_robin_is_fair_and_never_double_assigns_under_concurrency(
    company, admin_user, fresh_presence
):
    agents, number = _routed(company, admin_user, 3)
    _ingest_concurrently(number, 30)
    conversations = Conversation.objects.filter(company=company)
    assert conversations.count() == 30
    counts = Counter(conversations.values_list("assignee_id", flat=True))
    assert counts == {agent.pk: 10 for agent in agents}  # strictly in turn


@pytest.mark.django_db(transaction=True)
def test_caps_hold_under_concurrency_and_the_rest_stays_unassigned(
    company, admin_user, fresh_presence, client
):
    agents, number = _routed(company, admin_user, 3, max_open_conversations=2)
    _ingest_concurrently(number, 10, threads=5)
    counts = Counter(
        Conversation.objects.filter(company=company).values_list("assignee_id", flat=True)
    )
    assert counts == {agents[0].pk: 2, agents[1].pk: 2, agents[2].pk: 2, None: 4}
    # The inbox says so: those four are under "Unassigned", each row saying it.
    client.force_login(admin_user)
    response = client.get("/inbox/", {"assigned": "unassigned"})
    assert len(response.context["page"].object_list) == 4
    assert response.content.decode().count('conv-assignee is-none">Unassigned') == 4


@pytest.mark.django_db(transaction=True)
def test_only_online_present_agents_of_the_team_get_conversations(
    company, admin_user, fresh_presence
):
    online, away, offline, supervisor = (
        UserFactory(company=company, role=Role.AGENT),
        UserFactory(company=company, role=Role.AGENT),
        UserFactory(company=company, role=Role.AGENT),
        UserFactory(company=company, role=Role.SUPERVISOR),
    )
    outsider = UserFactory(company=company, role=Role.AGENT)  # online but not in the team
    _online(online, away, supervisor, outsider)
    services.set_away(away, True)
    number = _number(company, _team(admin_user, [online, away, offline, supervisor]))
    for n in range(4):
        ingest_inbound(number, f"t-{n}", f"m-{n}", _sender(n), "Hi")
    assignees = set(Conversation.objects.values_list("assignee_id", flat=True))
    assert assignees == {online.pk}
    # Nobody available at all: it stays unassigned.
    presence.gone(company.pk, online.pk, f"test-socket-{online.pk}")
    result = ingest_inbound(number, "t-late", "m-late", _sender(99), "Anyone?")
    assert Conversation.objects.get(pk=result.conversation.pk).assignee_id is None


@pytest.mark.django_db(transaction=True)
def test_a_routed_lead_tells_its_agent_once_alone_or_in_a_webhook_batch(
    company, admin_user, fresh_presence
):
    agents, number = _routed(company, admin_user, 2)
    ingest_inbound(number, "lead-1", "m-1", _sender(1), "Hello, price?")  # autocommit
    ingest_inbound_many(  # one transaction: distribution runs after its commit
        number,
        [
            Inbound("lead-2", "m-2", _sender(2), "Do you deliver?"),
            Inbound("lead-1", "m-3", _sender(1), "And the colour?"),
        ],
    )
    told = Notification.objects.order_by("pk").values_list("user_id", "kind", "subject", "body")
    assert list(told) == [
        (agents[0].pk, "assigned", "Lead 1", "Hello, price?"),
        (agents[1].pk, "assigned", "Lead 2", "Do you deliver?"),
        (agents[0].pk, "new_message", "Lead 1", "And the colour?"),
    ]
    assert Notification.objects.get(kind="assigned", user=agents[0]).title == (
        "You were assigned “Lead 1”"
    )


@pytest.mark.django_db(transaction=True)
def test_a_channel_without_distribution_or_team_assigns_nobody(company, admin_user, fresh_presence):
    agent = UserFactory(company=company, role=Role.AGENT)
    _online(agent)
    team = _team(admin_user, [agent])
    for number in (_number(company, team, Distribution.NONE), _number(company, None)):
        result = ingest_inbound(number, "t", "m", _sender(1), "Hi")
        assert Conversation.objects.get(pk=result.conversation.pk).assignee_id is None


@pytest.mark.django_db(transaction=True)
def test_the_first_responder_takes_the_conversation_once(company, admin_user, fresh_presence):
    first, second = (UserFactory(company=company, role=Role.AGENT) for _ in range(2))
    number = _number(company, _team(admin_user, [first, second]), Distribution.FIRST_RESPONDER)
    conversation = ingest_inbound(number, "t", "m", _sender(1), "Hi").conversation
    conversation.refresh_from_db()
    assert conversation.assignee_id is None  # visible to all, nobody's yet
    barrier = threading.Barrier(2)

    def reply(agent):
        try:
            barrier.wait()
            send_message(Conversation.objects.get(pk=conversation.pk), agent, f"I'm {agent}")
        finally:
            connection.close()

    threads = [threading.Thread(target=reply, args=(agent,)) for agent in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conversation.refresh_from_db()
    assert conversation.assignee_id in (first.pk, second.pk)
    taken_by = conversation.assignee_id
    send_message(conversation, second if taken_by == first.pk else first, "me too")
    conversation.refresh_from_db()
    assert conversation.assignee_id == taken_by  # the later reply does not take it over


@pytest.mark.django_db
def test_distribute_ignores_a_team_of_another_company(company, other_company, admin_user):
    """A channel row can only name its own company's team (the service checks; here the
    distribution itself also refuses anyone outside the company)."""
    stranger = UserFactory(company=other_company, role=Role.AGENT)
    team = Team.objects.create(company=company, name="Mixed")
    team.memberships.create(user=stranger)
    _online(stranger)
    assert distribution.candidates(team) == []
    assert stranger.pk in presence.online_user_ids(other_company.pk)


@pytest.mark.django_db
def test_presence_is_never_visible_across_companies(
    company, other_company, admin_user, api_for, fresh_presence
):
    colleague = UserFactory(company=company, role=Role.AGENT)
    stranger_admin = UserFactory(company=other_company, role=Role.ADMIN)
    _online(colleague)
    assert colleague.pk in presence.online_user_ids(company.pk)
    assert colleague.pk not in presence.online_user_ids(other_company.pk)
    theirs = api_for(stranger_admin)
    assert theirs.get(f"/api/v1/members/{colleague.pk}/").status_code == 404
    assert colleague.pk not in theirs.get("/api/v1/me/presence/").json()["online_user_ids"]
    mine = api_for(admin_user).get(f"/api/v1/members/{colleague.pk}/").json()
    assert mine["presence"] == "online"
    away = api_for(colleague).post("/api/v1/me/presence/", {"away": True}, format="json")
    assert away.json()["status"] == "away"
    assert api_for(colleague).post("/api/v1/me/presence/", {"away": "x"}).status_code == 400
