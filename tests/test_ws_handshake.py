"""A WebSocket handshake reads the database once (a reconnect storm after a restart is bounded
by it): the lookup runs on the handshake threads, the session comes from Redis (cached_db sessions), the user and their company from one
query; an API token is one query too. Access taken away is still honoured at the next
handshake: a logged-out session or a new password is refused with 4401."""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db.backends.utils import CursorWrapper

from accounts.models import ApiToken
from crm.asgi import application

from .factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _cookie(client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def _handshake(path="/ws/", headers=None) -> tuple[dict, WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=10)
    assert connected  # accepted first, even when refused (then closed with 4401)
    return await communicator.receive_output(timeout=10), communicator


def _queries_of_a_handshake(path="/ws/", headers=None) -> tuple[dict, list[str]]:
    """The first frame of a real handshake through the ASGI application (origin check,
    cookies, our consumer) and every SQL statement it ran, on whichever thread: each
    connection's cursor notes what it executes while the handshake runs."""
    seen: list[str] = []
    real = CursorWrapper._execute_with_wrappers

    def noted(self, sql, params, many, executor):
        seen.append(sql)
        return real(self, sql, params, many, executor)

    async def run():
        first, communicator = await _handshake(path, headers)
        await communicator.disconnect()
        return first

    CursorWrapper._execute_with_wrappers = noted
    try:
        first = async_to_sync(run)()
    finally:
        CursorWrapper._execute_with_wrappers = real
    return first, seen


def test_a_session_cookie_handshake_reads_the_database_once(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    first, queries = _queries_of_a_handshake(headers=[_cookie(client)])
    assert first["type"] == "websocket.send" and '"welcome"' in first["text"]
    assert len(queries) <= 1, queries


def test_a_token_handshake_reads_the_database_once(company):
    user = UserFactory(company=company)
    _token, raw = ApiToken.issue(user, "script")
    first, _ = _queries_of_a_handshake(f"/ws/?token={raw}")  # notes the token's first use
    assert '"welcome"' in first["text"]
    first, queries = _queries_of_a_handshake(f"/ws/?token={raw}")
    assert '"welcome"' in first["text"]
    assert len(queries) <= 1, queries


def test_a_logged_out_session_is_refused_at_the_next_handshake(client, company):
    client.force_login(UserFactory(company=company))
    cookie = _cookie(client)
    assert '"welcome"' in _queries_of_a_handshake(headers=[cookie])[0]["text"]
    assert client.post("/logout/").status_code == 302
    first, _ = _queries_of_a_handshake(headers=[cookie])
    assert first == {"type": "websocket.close", "code": 4401}


def test_a_new_password_refuses_the_old_sessions_next_handshake(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    cookie = _cookie(client)
    assert '"welcome"' in _queries_of_a_handshake(headers=[cookie])[0]["text"]
    user.set_password("another long passphrase")
    user.save()
    first, _ = _queries_of_a_handshake(headers=[cookie])
    assert first == {"type": "websocket.close", "code": 4401}


def test_another_companys_deactivation_does_not_refuse_mine(client, company, other_company):
    client.force_login(UserFactory(company=company))
    other_company.is_active = False
    async_to_sync(sync_to_async(other_company.save))()
    assert '"welcome"' in _queries_of_a_handshake(headers=[_cookie(client)])[0]["text"]
