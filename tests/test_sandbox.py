"""The sandbox channel: a customer typed on our own page arrives in the inbox through the one
door, agents' replies show on that page and the customer marks them delivered and read; and
`make run`'s demo (the same seed command, a real Celery worker) exchanges a message."""

import uuid

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils.html import escape

from accounts.management.commands.seed_demo import read_logins
from accounts.models import Company
from channels_integrations.models import BotRule, Broadcast, BroadcastRecipient
from messaging.models import Conversation, Message

from .conftest import set_celery
from .factories import (
    ClientFactory,
    ConversationFactory,
    MessageFactory,
    SandboxInboxFactory,
)
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


# ---------------------------------------------------------------- bots and broadcasts (issue #20)


def _add_rule(client, trigger, reply):
    return client.post(reverse("sandbox_bot_rule"), {"trigger": trigger, "reply_text": reply})


def _broadcast(client, text, client_ids):
    return client.post(reverse("sandbox_broadcast"), {"text": text, "clients": client_ids})


def _customers(company):
    return {
        c.client.name: c.client_id
        for c in Conversation.objects.filter(company=company, platform="sandbox").select_related(
            "client"
        )
    }


@pytest.mark.django_db
def test_a_sandbox_bot_rule_answers_the_customer_through_the_bots_engine(
    client, admin_user, eager_celery, django_capture_on_commit_callbacks
):
    client.force_login(admin_user)
    assert _add_rule(client, "price", "From 10 € a month.").status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        _write(client, "Rita", "What is the PRICE?")
    reply = Message.objects.get(direction="out", conversation__platform="sandbox")
    assert reply.body == "From 10 € a month." and reply.bot is not None
    assert reply.status == Message.Status.SENT  # sent by the one send policy
    page = client.get(reverse("sandbox") + "?customer=Rita").content.decode()
    assert "From 10 € a month." in page and "“price”" in page
    # A message without the keyword gets no answer.
    with django_capture_on_commit_callbacks(execute=True):
        _write(client, "Rita", "Thanks!")
    assert Message.objects.filter(direction="out").count() == 1


@pytest.mark.django_db
def test_sandbox_bot_and_broadcast_forms_refuse_in_words_and_write_nothing(
    client, admin_user, agent_user, other_company
):
    client.force_login(admin_user)
    response = _add_rule(client, "  ", "A reply")
    assert response.status_code == 400
    assert "Keyword: Enter a keyword" in response.content.decode()
    assert not BotRule.objects.exists()

    _write(client, "Rita", "Hello")
    response = _broadcast(client, "Sale!", [])
    assert response.status_code == 400 and "Customers: Choose at least one" in (
        response.content.decode()
    )
    # A client who is not one of the sandbox's customers (a real one, another company's).
    real = ClientFactory(company=admin_user.company, phone="+4915112345678")
    foreign = ClientFactory(company=other_company, phone="+4915112345679")
    for outsider in (real, foreign):
        response = _broadcast(client, "Sale!", [outsider.pk])
        assert response.status_code == 400 and "Unknown clients" in response.content.decode()
    response = _broadcast(client, "", [_customers(admin_user.company)["Rita"]])
    assert response.status_code == 400 and "Broadcast text:" in response.content.decode()
    assert not Broadcast.objects.exists()

    # Agents may play the customer, not add rules or send broadcasts.
    client.force_login(agent_user)
    assert _add_rule(client, "price", "x").status_code == 403
    assert _broadcast(client, "Sale!", [_customers(admin_user.company)["Rita"]]).status_code == 403
    page = client.get(reverse("sandbox")).content.decode()
    assert "An admin can add rules here." in page


@pytest.mark.django_db
def test_another_companys_sandbox_broadcast_cannot_be_marked(client, admin_user, other_company):
    box = SandboxInboxFactory(company=other_company)
    broadcast = Broadcast.objects.create(sandbox=box, text="Theirs", status="completed")
    recipient = BroadcastRecipient.objects.create(
        broadcast=broadcast, phone="+447700900001", status="sent"
    )
    client.force_login(admin_user)
    url = reverse("sandbox_mark_broadcast", args=[recipient.pk, "read"])
    assert client.post(url).status_code == 404
    recipient.refresh_from_db()
    assert recipient.status == "sent"


def test_the_demo_bot_answers_and_a_broadcast_reaches_three_customers_through_the_worker(
    transactional_db, tmp_path, settings, client
):
    """`make run`'s seed puts a bot on the sandbox: a real worker sends its answer. A
    broadcast to three sandbox customers is sent by the worker (3 sent, completed), and the
    customers' phones mark it delivered and read from the page."""
    settings.DEMO_LOGINS_FILE = tmp_path / "demo-logins.txt"
    queue = f"sandbox-bots-{uuid.uuid4().hex[:8]}"
    set_celery(task_default_queue=queue)
    worker = Worker(
        "sandbox-bots", queue, tmp_path, env={"DEMO_LOGINS_FILE": str(settings.DEMO_LOGINS_FILE)}
    )
    try:
        worker.wait_ready()
        call_command("seed_demo", "--quiet")
        logins = read_logins()
        client.post(reverse("login"), {"username": "demo-admin", "password": logins["demo-admin"]})

        assert _write(client, "Sam Sandbox", "What is the price?").status_code == 302

        def bot_answer():
            return Message.objects.filter(
                conversation__platform="sandbox", bot__isnull=False, status="sent"
            ).first()

        answer = wait_for(bot_answer, timeout=60)
        assert "10 €" in answer.body
        page = client.get(reverse("sandbox") + "?customer=Sam+Sandbox").content.decode()
        assert escape(answer.body) in page

        for name in ("Rita Sandbox", "Oleh Sandbox"):
            _write(client, name, "Hello!")
        customers = _customers(Company.objects.get(slug="demo"))
        assert len(customers) == 3
        assert (
            _broadcast(client, "Spring sale: 20% off.", list(customers.values())).status_code == 302
        )
        broadcast = Broadcast.objects.get(sandbox__isnull=False)

        def finished():
            broadcast.refresh_from_db()
            return broadcast.status != "sending"

        wait_for(finished, timeout=60)
        statuses = list(broadcast.recipients.values_list("status", flat=True))
        assert broadcast.status == "completed" and statuses == ["sent"] * 3
        page = client.get(reverse("sandbox") + "?customer=Rita+Sandbox").content.decode()
        assert "Spring sale: 20% off." in page and "3 of 3 sent, 0 failed, 0 pending" in page

        rita = broadcast.recipients.get(client_id=customers["Rita Sandbox"])
        mark = reverse("sandbox_mark_broadcast", args=[rita.pk, "delivered"])
        client.post(mark, {"customer": "Rita Sandbox"})
        client.post(reverse("sandbox_mark_broadcast", args=[rita.pk, "read"]))
        client.post(mark)  # forward only
        rita.refresh_from_db()
        assert rita.status == "read"
        assert sorted(broadcast.recipients.values_list("status", flat=True)) == [
            "read",
            "sent",
            "sent",
        ]
    finally:
        set_celery(task_default_queue="celery")
        worker.kill()
