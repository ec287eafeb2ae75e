"""POST /api/v1/whatsapp/numbers/{id}/send/: validation with the field named, the per-company
rate limit at its boundary (30 ok, the 31st is 429 with Retry-After), and the in-process
fallback when Redis is stopped (a real redis-server of the test's own, killed)."""

import pytest

from crm import coordination
from messaging.models import Conversation, Message

from .factories import UserFactory, WhatsAppNumberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_local_window():
    coordination.local_window.clear()
    yield
    coordination.local_window.clear()


@pytest.fixture
def number(company):
    # QR-linked: no 24-hour window, so fresh phones can be sent free text (the Cloud API's
    # window on this endpoint: test_whatsapp_cloud.py and test_whatsapp_templates.py).
    return WhatsAppNumberFactory(company=company, provider="web")


def _send(api, number, **data):
    payload = {"phone": "+4915112345678", "message": "Hello from the API", **data}
    return api.post(f"/api/v1/whatsapp/numbers/{number.pk}/send/", payload, format="json")


def test_an_agent_sends_and_the_message_is_queued(api_for, agent_user, number, far_end):
    response = _send(api_for(agent_user), number)
    assert response.status_code == 202
    message = Message.objects.get(pk=response.json()["message"]["id"])
    assert message.status == "queued" and message.author == agent_user
    assert message.conversation.external_thread_id == "4915112345678"


@pytest.mark.parametrize(
    "data,field",
    [
        ({"phone": "12345"}, "phone"),
        ({"phone": "+49 not a number"}, "phone"),
        ({"phone": ""}, "phone"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 4097}, "message"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_stores_nothing(
    api_for, agent_user, number, data, field
):
    response = _send(api_for(agent_user), number, **data)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not Conversation.objects.exists() and not Message.objects.exists()


def test_4096_characters_are_accepted(api_for, agent_user, number, far_end):
    assert _send(api_for(agent_user), number, message="x" * 4096).status_code == 202


def test_a_deactivated_number_sends_nothing(api_for, agent_user, number):
    number.is_active = False
    number.save()
    response = _send(api_for(agent_user), number)
    assert response.status_code == 400 and "number" in response.json()
    assert not Message.objects.exists()


def _use_budget(api, number, count):
    return [_send(api, number, message=f"Message {n}").status_code for n in range(count)]


def test_thirty_a_minute_then_429_with_retry_after(api_for, agent_user, number, far_end):
    api = api_for(agent_user)
    assert _use_budget(api, number, 30) == [202] * 30
    response = _send(api, number)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "30 messages per minute" in response.json()["detail"]
    assert Message.objects.count() == 30  # the refused one was not stored


def test_the_limit_is_per_company(api_for, agent_user, number, far_end, other_company):
    assert _use_budget(api_for(agent_user), number, 30) == [202] * 30
    theirs = WhatsAppNumberFactory(company=other_company, provider="web")
    assert _send(api_for(UserFactory(company=other_company)), theirs).status_code == 202


def test_invalid_requests_do_not_use_the_budget(api_for, agent_user, number, far_end):
    api = api_for(agent_user)
    for _ in range(5):
        assert _send(api, number, phone="nope").status_code == 400
    assert _use_budget(api, number, 30) == [202] * 30


@pytest.mark.django_db(transaction=True)
def test_with_redis_stopped_the_limit_holds_in_process(
    private_redis, api_for, company, far_end, eager_celery, caplog, settings
):
    """Redis (a server of this test's own) is killed: sends neither fail nor go unlimited."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    number = WhatsAppNumberFactory(company=company, provider="web")
    api = api_for(UserFactory(company=company))
    assert _use_budget(api, number, 10) == [202] * 10  # counted in Redis
    private_redis.stop()

    statuses = _use_budget(api, number, 31)
    assert statuses == [202] * 30 + [429]
    assert "Redis unreachable" in caplog.text
