from contextlib import contextmanager

import pytest
import redis
from channels.layers import channel_layers
from django.conf import settings
from django.db import connection
from django.utils import translation
from rest_framework.test import APIClient

from accounts.models import Role
from crm.celery import app as celery_app

from .factories import CompanyFactory, UserFactory
from .far_end import GraphFake
from .mailserver import dovecot, dovecot_server, smtp_server  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request of a Russian-speaking user leaves
    its language active in this thread (LocaleMiddleware), which would leak into the next."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each test gets its own Channels layer. channels-redis keeps one receiving state per layer
    (a count of receivers and a lock, bound to the event loop that first waited on it) on the
    assumption of one event loop per process; a test runs a new loop per async_to_sync, and a
    receive left behind by one test's loop failed a later test's sockets with "Lock ... is bound
    to a different event loop" (tests/test_revocation.py, once in CI). daphne has one loop."""
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session", autouse=True)
def _fresh_cache():
    """Each run starts on a new test database but the same Redis: drop what earlier runs of
    this checkout cached (idempotency answers keyed by user ids that a new database reuses)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    stale = list(client.scan_iter(f"{settings.CACHES['default']['KEY_PREFIX']}:*", count=1000))
    if stale:
        client.delete(*stale)
    client.close()


@pytest.fixture
def company(db):
    return CompanyFactory(name="Acme")


@pytest.fixture
def other_company(db):
    return CompanyFactory(name="Globex")


@pytest.fixture
def admin_user(company):
    return UserFactory(company=company, role=Role.ADMIN, username="alice")


@pytest.fixture
def agent_user(company):
    return UserFactory(company=company, role=Role.AGENT, username="bob")


@pytest.fixture
def api_for():
    """api_for(user) -> an APIClient authenticated as that user (session auth)."""

    def make(user):
        client = APIClient()
        client.force_authenticate(user=user)
        return client

    return make


@pytest.fixture
def admin_api(api_for, admin_user):
    return api_for(admin_user)


@pytest.fixture(scope="session")
def graph_fake():
    fake = GraphFake().start()
    yield fake
    fake.stop()


@pytest.fixture
def far_end(graph_fake, settings):
    """The WhatsApp Cloud API's far end (tests.far_end.GraphFake, returned, emptied): Cloud
    numbers send to it over HTTP; `.sent` is what it accepted, `.script` its next answers."""
    graph_fake.clear()
    settings.WHATSAPP_GRAPH_URL = graph_fake.url
    yield graph_fake
    graph_fake.clear()


@pytest.fixture
def queued_sends(monkeypatch):
    """Delivery tasks are recorded, not queued: [(message_id, countdown)] (no broker here)."""
    from messaging.tasks import deliver_message

    queued = []
    monkeypatch.setattr(
        deliver_message,
        "apply_async",
        lambda args, kwargs=None, countdown=None, **_: queued.append((args[0], countdown)),
    )
    return queued


def set_celery(**options) -> None:
    """Change the Celery app's settings in this process. Celery reads Django's settings under
    their CELERY_ names, and those names win over the plain ones: set both."""
    for name, value in options.items():
        celery_app.conf[name] = value
        celery_app.conf[f"CELERY_{name.upper()}"] = value


@contextmanager
def eager_tasks():
    """Tasks run in the calling process as they are queued."""
    set_celery(task_always_eager=True)
    try:
        yield
    finally:
        set_celery(task_always_eager=False)


@pytest.fixture
def eager_celery():
    """Tasks run in the calling process as they are queued (retries included)."""
    with eager_tasks():
        yield


@pytest.fixture
def failing_message_delete():
    """PostgreSQL refuses to delete messages: a real failure in the middle of a cascade,
    after the parent's own row was already deleted inside the transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_delete() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_message_delete BEFORE DELETE ON messaging_message
            FOR EACH ROW EXECUTE FUNCTION refuse_delete();
            """
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER refuse_message_delete ON messaging_message; DROP FUNCTION refuse_delete();"
        )


@pytest.fixture
def private_redis(settings):
    """A redis-server of this test's own (settings.REDIS_URL points at it), to stop at will."""
    from .processes import RedisServer

    server = RedisServer()
    server.start()
    settings.REDIS_URL = f"redis://127.0.0.1:{server.port}/0"
    yield server
    server.stop()
