"""Notes, notifications, typing and viewing over the real /ws/ endpoint (Redis pub/sub, the
per-process hub): a mention reaches the colleague's socket as `notification.created`, never
another company's; "X is typing" / "X is viewing" reach only the same company's sockets that
have that conversation open, throttled, never stored; a connection that gave up notifies the
company's admins."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection

from accounts.models import ApiToken, Role
from crm.asgi import application
from messaging import services
from messaging.models import Message
from notifications.models import Notification

from .factories import ConversationFactory, UserFactory
from .processes import wait_for
from .test_telegram import account, fake_telegram, listeners  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


async def _socket(user):
    token = await sync_to_async(lambda: ApiToken.issue(user, "ws")[1])()
    communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["event"] == "welcome"
    return communicator


async def _events(communicator, name, timeout=0.6):
    """Every `name` event that arrives within `timeout` s of quiet."""
    seen = []
    while not await communicator.receive_nothing(timeout=timeout):
        frame = await communicator.receive_json_from(timeout=5)
        if frame["event"] == name:
            seen.append(frame.get("data"))
    return seen


def test_a_mention_is_stored_and_pushed_to_the_colleague_only(company, other_company):
    author = UserFactory(company=company)
    maria = UserFactory(company=company, username="maria")
    bystander = UserFactory(company=company)
    stranger = UserFactory(company=other_company, username="marius")
    conversation = ConversationFactory(company=company, client__name="Bremen")

    async def run():
        sockets = {user.pk: await _socket(user) for user in (maria, bystander, stranger)}
        await sync_to_async(services.add_note)(author, conversation, "@maria @marius please look")
        pushed = await _events(sockets[maria.pk], "notification.created", timeout=2)
        assert len(pushed) == 1
        assert pushed[0]["kind"] == "mentioned" and pushed[0]["unread_count"] == 1
        assert pushed[0]["title"].endswith("mentioned you in “Bremen”")
        assert pushed[0]["conversation_id"] == conversation.pk
        assert await _events(sockets[bystander.pk], "notification.created") == []
        assert await _events(sockets[stranger.pk], "notification.created") == []
        assert await _events(sockets[stranger.pk], "message.created", timeout=0.3) == []
        for communicator in sockets.values():
            await communicator.disconnect()

    async_to_sync(run)()
    assert list(Notification.objects.values_list("user_id", "kind")) == [(maria.pk, "mentioned")]
    connection.close()


def test_typing_and_viewing_reach_only_colleagues_with_the_conversation_open(
    company, other_company
):
    alice, bob, carol = (
        UserFactory(company=company, first_name=name) for name in ("Alice", "Bob", "Carol")
    )
    mallory = UserFactory(company=other_company)
    conversation = ConversationFactory(company=company)
    elsewhere = ConversationFactory(company=company)
    messages_before = Message.objects.count()

    async def run():
        a, b, c, m = [await _socket(user) for user in (alice, bob, carol, mallory)]
        await b.send_json_to(
            {"event": "conversation.viewing", "data": {"conversation_id": conversation.pk}}
        )
        await c.send_json_to(
            {"event": "conversation.viewing", "data": {"conversation_id": elsewhere.pk}}
        )
        # Another company's agent cannot join or speak into this conversation.
        await m.send_json_to(
            {"event": "conversation.viewing", "data": {"conversation_id": conversation.pk}}
        )
        await m.send_json_to(
            {"event": "conversation.typing", "data": {"conversation_id": conversation.pk}}
        )
        viewing = await _events(a, "conversation.viewing")
        assert viewing == []  # alice has not opened it yet
        await a.send_json_to(
            {"event": "conversation.viewing", "data": {"conversation_id": conversation.pk}}
        )
        # Bob hears alice's signal, never his own (the server does not send it back).
        heard_by_bob = await _events(b, "conversation.viewing")
        assert [(d["user_id"], d["name"]) for d in heard_by_bob] == [(alice.pk, alice.display_name)]

        # A flood of typing: one signal passes the throttle.
        for _ in range(10):
            await a.send_json_to(
                {"event": "conversation.typing", "data": {"conversation_id": conversation.pk}}
            )
        typing = await _events(b, "conversation.typing")
        assert [(d["conversation_id"], d["user_id"]) for d in typing] == [
            (conversation.pk, alice.pk)
        ]
        assert await _events(a, "conversation.typing") == []  # alice's own: not sent back
        assert await _events(c, "conversation.typing") == []  # carol has another one open
        assert await _events(m, "conversation.typing") == []
        # Junk is ignored, and the socket stays open.
        for junk in (
            {"conversation_id": "1"},
            {"conversation_id": True},
            [],
            None,
            {"conversation_id": -5},
        ):
            await a.send_json_to({"event": "conversation.typing", "data": junk})
        await a.send_json_to({"event": "ping"})
        assert len(await _events(a, "pong")) == 1

        # Alice closes the page: bob hears she left.
        await a.disconnect()
        left = await _events(b, "conversation.left", timeout=2)
        assert [d["user_id"] for d in left] == [alice.pk]
        for communicator in (b, c, m):
            await communicator.disconnect()

    async_to_sync(run)()
    assert Message.objects.count() == messages_before  # nothing stored per keystroke
    connection.close()


def test_a_connection_that_gave_up_notifies_the_admins(listeners, account, company):  # noqa: F811
    from channels_integrations.models import TelegramAccount
    from channels_integrations.telegram import listener as telegram_listener

    from . import telegram_fakes as tg

    admin = UserFactory(company=company, role=Role.ADMIN)
    agent = UserFactory(company=company, role=Role.AGENT)
    tg.FakeTelegramClient.script["connect_error"] = ConnectionError("network unreachable")
    telegram_listener.supervise()
    wait_for(
        lambda: TelegramAccount.objects.get(pk=account.pk).status == TelegramAccount.Status.ERROR
    )
    wait_for(lambda: Notification.objects.filter(kind="connection_failed").exists())
    notified = set(
        Notification.objects.filter(kind="connection_failed").values_list("user_id", flat=True)
    )
    assert admin.pk in notified and agent.pk not in notified
    notification = Notification.objects.filter(user=admin).get()
    assert "network unreachable" in notification.body
    assert notification.title.startswith("The connection “")
