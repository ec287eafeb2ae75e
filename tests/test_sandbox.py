"""The sandbox channel: a customer typed on our own page arrives in the inbox through the one
door, agents' replies show on that page and the customer marks them delivered and read; and
`make run`'s demo (the same seed command, a real Celery worker) exchanges a message."""

import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.management.commands.seed_demo import read_logins
from messaging.models import Conversation, Message

from .conftest import set_celery
from .factories import ConversationFactory, MessageFactory, SandboxInboxFactory
from .processes import Worker, wait_for


def _write(client, customer, body):
    return client.post(reverse("sandbox_write"), {"customer": customer, "body": body})


@pytest.mark.django_db
def test_what_the_customer_writes_arrives_in_the_inbox(client, admin_user):
    client.force_login(admin_user)
    assert _write(client, "Rita Tester", "Hello from Rita").status_code == 302

    conversation = Conversation.objects.get(company=admin_user.company, platform="sandbox")
    assert conversation.client.name == "Rita Tester"
    assert [m.body for m in conversation.messages.all()] == ["Hello from Rita"]
    assert "Hello from Rita" in client.get(reverse("inbox")).content.decode()
    page = client.get(reverse("sandbox") + "?customer=Rita+Tester").content.decode()
    assert "Hello from Rita" in page
    assert "test channel" in page  # clearly labelled


@pytest.mark.django_db
def test_an_empty_customer_message_is_refused_in_words_and_stores_nothing(client, admin_user):
    client.force_login(admin_user)
    response = _write(client, "Rita", "   ")
    assert response.status_code == 400
    assert "Write a message first." in response.content.decode()
    assert not Conversation.objects.filter(platform="sandbox").exists()


@pytest.mark.django_db
def test_replies_show_on_the_customer_page_and_the_customer_marks_them(
    client, admin_user, eager_celery, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    _write(client, "Rita", "Do you open on Sunday?")
    conversation = Conversation.objects.get(platform="sandbox")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("conversation_reply", args=[conversation.pk]),
            {"body": "No, Monday to Friday."},
        )
    assert response.status_code in (200, 302)
    reply = conversation.messages.get(direction="out")
    assert reply.status == Message.Status.SENT  # the sandbox took it at once

    page = client.get(reverse("sandbox") + "?customer=Rita").content.decode()
    assert "No, Monday to Friday." in page
    assert "Mark delivered" in page

    client.post(reverse("sandbox_mark", args=[reply.pk, "delivered"]), {"customer": "Rita"})
    reply.refresh_from_db()
    assert reply.status == Message.Status.DELIVERED
    client.post(reverse("sandbox_mark", args=[reply.pk, "read"]), {"customer": "Rita"})
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ
    # Forward only: "delivered" after "read" changes nothing.
    client.post(reverse("sandbox_mark", args=[reply.pk, "delivered"]), {"customer": "Rita"})
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ


@pytest.mark.django_db
def test_another_companys_sandbox_reply_is_404(client, admin_user, other_company):
    foreign = ConversationFactory(
        company=other_company, source=SandboxInboxFactory(company=other_company)
    )
    reply = MessageFactory(conversation=foreign, direction="out", status="sent")
    client.force_login(admin_user)
    assert client.post(reverse("sandbox_mark", args=[reply.pk, "read"])).status_code == 404
    assert client.post(reverse("sandbox_mark", args=[reply.pk, "sent"])).status_code == 404
    reply.refresh_from_db()
    assert reply.status == "sent"


def test_make_run_demo_exchanges_a_message_through_the_sandbox(
    transactional_db, tmp_path, settings, client
):
    """The seed `make run` uses, and a real worker sending: the demo agent answers the seeded
    sandbox customer, who writes again and reads the answer."""
    settings.DEMO_LOGINS_FILE = tmp_path / "demo-logins.txt"
    queue = f"sandbox-demo-{uuid.uuid4().hex[:8]}"
    set_celery(task_default_queue=queue)
    worker = Worker(
        "sandbox", queue, tmp_path, env={"DEMO_LOGINS_FILE": str(settings.DEMO_LOGINS_FILE)}
    )
    try:
        worker.wait_ready()
        call_command("seed_demo", "--quiet")
        call_command("seed_demo", "--quiet")  # a second `make run`: same logins, no duplicates
        logins = read_logins()
        assert set(logins) == {"demo-admin", "demo-agent"}

        conversation = Conversation.objects.get(platform="sandbox")
        seeded_reply = conversation.messages.get(direction="out")
        wait_for(lambda: Message.objects.get(pk=seeded_reply.pk).status == "sent", timeout=60)

        login = client.post(
            reverse("login"), {"username": "demo-agent", "password": logins["demo-agent"]}
        )
        assert login.status_code == 302, "the printed login works"
        assert _write(client, "Sam Sandbox", "Can I pay by card?").status_code == 302
        assert conversation.messages.filter(body="Can I pay by card?", direction="in").exists()

        client.post(reverse("conversation_reply", args=[conversation.pk]), {"body": "Yes, we can."})
        reply = conversation.messages.get(body="Yes, we can.")
        wait_for(lambda: Message.objects.get(pk=reply.pk).status == "sent", timeout=60)

        page = client.get(reverse("sandbox") + "?customer=Sam+Sandbox").content.decode()
        assert "Yes, we can." in page
        client.post(reverse("sandbox_mark", args=[reply.pk, "read"]), {"customer": "Sam Sandbox"})
        assert Message.objects.get(pk=reply.pk).status == "read"
    finally:
        set_celery(task_default_queue="celery")
        worker.kill()
