"""Access taken away closes the open WebSockets within moments, with 4401 (log in again): a
revoked API token, a session logged out, a new password, a deactivated user. Through the real
Channels layer (channels-redis) on the real Redis; other people's sockets stay open."""

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.db import transaction

from accounts import revocation
from accounts.models import ApiToken
from accounts.services import revoke_api_token
from crm.asgi import application

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


async def _open(path="/ws/", headers=None):
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["event"] == "welcome"
    return communicator


async def _closed_with(communicator) -> int | None:
    output = await communicator.receive_output(timeout=5)
    return output.get("code") if output["type"] == "websocket.close" else None


async def _still_open(communicator) -> bool:
    await communicator.send_to(text_data='{"event": "ping"}')
    return (await communicator.receive_json_from(timeout=5)) == {"event": "pong"}


def _sync(function, *args):
    """Run an ORM write in its own committed transaction (its on-commit effects fire)."""

    def run():
        with transaction.atomic():
            function(*args)

    from asgiref.sync import sync_to_async

    return sync_to_async(run)()


def test_a_revoked_token_closes_its_sockets_and_only_those(company):
    alice, bob = UserFactory(company=company), UserFactory(company=company)
    token, raw = ApiToken.issue(alice, "script")
    _other, other_raw = ApiToken.issue(alice, "laptop")
    _bobs, bobs_raw = ApiToken.issue(bob, "phone")

    async def run():
        revoked = await _open(f"/ws/?token={raw}")
        same_user_other_token = await _open(f"/ws/?token={other_raw}")
        someone_else = await _open(f"/ws/?token={bobs_raw}")
        await _sync(revoke_api_token, alice, token)
        assert await _closed_with(revoked) == 4401
        assert await _still_open(same_user_other_token)
        assert await _still_open(someone_else)
        # The revoked token cannot open a new one either.
        again = WebsocketCommunicator(application, f"/ws/?token={raw}")
        await again.connect(timeout=5)
        assert await _closed_with(again) == 4401

    async_to_sync(run)()


def test_a_revocation_from_a_thread_running_an_event_loop_still_closes_the_socket(
    company, monkeypatch
):
    """Sync code called on a thread that runs an event loop (Playwright's in the browser
    tests, which allow the ORM there as this test does), where async_to_sync refuses to run:
    the close still goes out."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    alice = UserFactory(company=company)
    token, raw = ApiToken.issue(alice, "script")

    async def run():
        socket = await _open(f"/ws/?token={raw}")
        revocation.revoke(token_id=token.pk)  # no transaction: sent at once, from this thread
        assert await _closed_with(socket) == 4401

    async_to_sync(run)()


def test_logging_out_closes_the_sessions_sockets(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    cookie = (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())

    async def run():
        socket = await _open(headers=[cookie])

        def log_out():
            assert client.post("/logout/").status_code == 302

        from asgiref.sync import sync_to_async

        await sync_to_async(log_out)()
        assert await _closed_with(socket) == 4401

    async_to_sync(run)()


@pytest.mark.parametrize("change", ["password", "deactivated"])
def test_a_new_password_or_a_deactivation_closes_every_socket_of_the_user(company, change):
    user, other = UserFactory(company=company), UserFactory(company=company)
    _t1, raw = ApiToken.issue(user, "one")
    _t2, others_raw = ApiToken.issue(other, "two")

    def apply():
        if change == "password":
            user.set_password("a new and long passphrase")
        else:
            user.is_active = False
        user.save()

    async def run():
        socket = await _open(f"/ws/?token={raw}")
        bystander = await _open(f"/ws/?token={others_raw}")
        await _sync(apply)
        assert await _closed_with(socket) == 4401
        assert await _still_open(bystander)

    async_to_sync(run)()


def test_a_log_in_saves_the_user_without_closing_anything(company):
    user = UserFactory(company=company)
    _t, raw = ApiToken.issue(user, "one")

    async def run():
        socket = await _open(f"/ws/?token={raw}")
        user.last_login = None
        await _sync(lambda: user.save(update_fields=["last_login"]))
        user.first_name = "Renamed"
        await _sync(user.save)
        assert await _still_open(socket)

    async_to_sync(run)()


def test_wrong_socket_tokens_from_one_address_are_throttled(company, settings, caplog):
    """`?token=` is guessed as the API header is: the same count per address. Past it, even
    the right token is refused like no token (4401); another address is not affected."""
    import logging

    settings.API_TOKEN_FAILURES_PER_MINUTE = 3
    user = UserFactory(company=company)
    _token, raw = ApiToken.issue(user, "script")
    guesser, neighbour = "192.0.2.71", "192.0.2.72"

    async def open_from(address, token):
        communicator = WebsocketCommunicator(application, f"/ws/?token={token}")
        communicator.scope["client"] = [address, 50000]  # what daphne puts there
        connected, _ = await communicator.connect(timeout=5)
        assert connected  # accepted, then closed: 4401 reaches the browser, a refusal does not
        first = await communicator.receive_output(timeout=5)
        await communicator.disconnect()
        return first.get("code") if first["type"] == "websocket.close" else "welcome"

    async def run():
        assert await open_from(guesser, raw) == "welcome"
        for n in range(4):
            assert await open_from(guesser, f"sb_wrong{n}") == 4401
        assert await open_from(guesser, raw) == 4401
        assert await open_from(neighbour, raw) == "welcome"

    with caplog.at_level(logging.WARNING, logger="accounts.authentication"):
        async_to_sync(run)()
    assert f"ws: wrong token from {guesser}" in caplog.text
    assert f"ws: wrong tokens from {guesser} throttled" in caplog.text
    assert "sb_wrong" not in caplog.text and raw not in caplog.text
