"""When no connection host has room, a connection "waits for capacity" and says so for every
kind alike (issue #21): an IMAP IDLE mailbox on the email page and in the email API (the
same words and fields as Telegram accounts), in /metrics, and the company's admins are told
once per waiting episode through the notifications app (stored, in the bell), never agents
or another company. A real connection host object advertises capacity 0 in the real Redis;
the supervisor is the one beat runs."""

import pytest
from django.core.cache import cache

from channels_integrations import fleet
from channels_integrations.hosting import ConnectionHost
from crm import coordination
from notifications.models import Notification

from .factories import (
    CompanyFactory,
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
)


def _clear_fleet():
    client = coordination.redis_client()
    for name in (fleet.HOSTS, fleet.OWNERS, fleet.WAITING, fleet.TOLD):
        client.delete(coordination.key(name))
    for found in client.scan_iter(cache.make_key("fleet:*")):
        client.delete(found)


@pytest.fixture
def full_fleet():
    """One live connection host with no room (capacity 0); `room(n)` adds another host."""
    _clear_fleet()
    hosts = []

    def advertise(capacity):
        host = ConnectionHost(capacity=capacity)
        host.id = f"{host.id}:{len(hosts)}"  # several in this one process
        host._advertise()
        hosts.append(host)
        return host

    advertise(0)
    yield advertise
    for host in hosts:
        host.db_pool.shutdown(wait=False)
        host.blocking.shutdown(wait=False)
        host.beat_pool.shutdown(wait=False)
    _clear_fleet()


@pytest.fixture
def supervise(django_capture_on_commit_callbacks):
    """The supervisor's period as beat runs it (autocommit: its after-commit work runs)."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return fleet.supervise()

    return run


def _metrics(client, settings):
    settings.METRICS_TOKEN = "waiting-test"
    return client.get("/metrics", headers={"Authorization": "Bearer waiting-test"}).content.decode()


@pytest.mark.django_db
def test_an_idle_mailbox_without_room_says_so_and_admins_are_told_once(
    client, admin_user, agent_user, company, settings, full_fleet, supervise
):
    second_admin = UserFactory(company=company, role="admin", username="carol")
    mailbox = EmailAccountFactory(company=company, address="help@acme.test", use_idle=True)
    polled_only = EmailAccountFactory(company=company, address="old@acme.test", use_idle=False)
    other = CompanyFactory(name="Globex")
    other_admin = UserFactory(company=other, role="admin", username="gus")

    done = supervise()
    assert done["waiting"] == [fleet.item("email:idle", mailbox.pk)]

    # The page and the API: the same words and fields as Telegram accounts'.
    client.force_login(agent_user)
    page = client.get("/settings/email/").content.decode()
    assert "Waiting for capacity" in page
    assert "status-waiting" in page
    shown = client.get(f"/api/v1/email/accounts/{mailbox.pk}/").json()
    assert shown["waiting_for_capacity"] is True and shown["live_status"] == "waiting"
    polled = client.get(f"/api/v1/email/accounts/{polled_only.pk}/").json()
    assert polled["waiting_for_capacity"] is False and polled["live_status"] == "new"
    assert "Waiting for capacity" in client.get("/settings/").content.decode()

    assert "email_waiting_for_capacity 1.0" in _metrics(client, settings)
    assert 'connections_waiting_for_capacity{kind="email:idle"} 1.0' in _metrics(client, settings)

    # Admins of this company, stored, once: a second period of the same episode adds nothing.
    supervise()
    told = Notification.objects.filter(kind="connection_waiting")
    assert sorted(told.values_list("user_id", flat=True)) == sorted(
        [admin_user.pk, second_admin.pk]
    )
    note = told.get(user=admin_user)
    assert note.subject == "help@acme.test" and note.url == "/settings/email/"
    assert "is waiting for capacity" in note.title
    assert not Notification.objects.filter(user__in=[agent_user, other_admin]).exists()

    # ... in the bell of the admin, not of the agent.
    client.force_login(admin_user)
    bell = client.get("/api/v1/notifications/").json()
    assert any("help@acme.test" in row["title"] for row in bell["results"])
    client.force_login(agent_user)
    assert client.get("/api/v1/notifications/").json()["results"] == []


@pytest.mark.django_db
def test_every_kind_is_told_by_the_same_function_and_each_new_episode_again(
    client, admin_user, agent_user, company, full_fleet, supervise
):
    account = TelegramAccountFactory(company=company, name="Sales line")
    mailbox = EmailAccountFactory(company=company, address="help@acme.test", use_idle=True)

    supervise()
    subjects = sorted(
        Notification.objects.filter(user=admin_user).values_list("subject", flat=True)
    )
    assert subjects == [str(account), "help@acme.test"]
    assert Notification.objects.get(subject=str(account)).url == "/settings/telegram/"

    # Room appears: they are assigned and stop waiting ...
    roomy = full_fleet(5)
    done = supervise()
    assert sorted(done["assigned"]) == sorted(
        [fleet.item("telegram:account", account.pk), fleet.item("email:idle", mailbox.pk)]
    )
    client.force_login(admin_user)
    assert client.get(f"/api/v1/email/accounts/{mailbox.pk}/").json()["live_status"] != "waiting"
    assert Notification.objects.filter(user=admin_user).count() == 2

    # ... the roomy host dies: a new waiting episode, told again (once).
    coordination.redis_client().delete(fleet.host_key(roomy.id))
    supervise()
    supervise()
    assert Notification.objects.filter(user=admin_user).count() == 4
    assert not Notification.objects.filter(user=agent_user).exists()


@pytest.mark.django_db
def test_agents_are_not_offered_the_admins_waiting_notifications(client, agent_user, admin_user):
    client.force_login(agent_user)
    assert (
        'value="connection_waiting"' not in client.get("/settings/notifications/").content.decode()
    )
    client.force_login(admin_user)
    assert 'value="connection_waiting"' in client.get("/settings/notifications/").content.decode()
