"""The schema is the truth: every operation of /api/v1/, called with generated input
(schemathesis, bounded), never answers 5xx, and every answer matches what /api/schema/
declares for it (status, content type, body). Real rows of the company sit behind the ids, so
detail answers are checked too, unassigned and ownerless ones included."""

import re

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.models import ApiToken, Role
from triage.models import Label, SavedView

from .factories import (
    AttachmentFactory,
    BotRuleFactory,
    BroadcastFactory,
    ChatMemberFactory,
    ChatMessageFactory,
    ClientFactory,
    ConversationFactory,
    DealFactory,
    EmailAccountFactory,
    InstagramAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    PipelineFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
    WhatsAppSessionFactory,
)
from .page_walk import _canned_reply, _invitation, _team

# No not_a_server_error: a 5xx passes only where the schema documents it (a session health
# check answering 503 for monitors); status_code_conformance fails every other (any 500).
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 12  # bounded: the whole module stays under a minute or two


def seed_company(company, admin, api_token) -> dict[str, int]:
    """One of each object, the nullable parts left empty where a real company has them so.
    Returns the id behind each collection path ("*" for an earlier id in the path)."""
    number = WhatsAppNumberFactory(company=company)
    client = ClientFactory(company=company, email="", phone="")
    conversation = ConversationFactory(company=company, client=client, assignee=None)
    message = MessageFactory(conversation=conversation)
    attachment = AttachmentFactory(message=message, size=None, download_state="failed")
    ConversationFactory(company=company, assignee=admin)
    rule = BotRuleFactory(bot__number=number)
    broadcast = BroadcastFactory(number=number)
    chat = ChatMemberFactory(chat__company=company, user=admin).chat
    from notifications.models import Notification

    notification = Notification.objects.create(
        company=company, user=admin, kind="assigned", subject="Kiel", conversation=conversation
    )
    return {
        "/api/v1/attachments/": attachment.pk,
        "/api/v1/chats/": chat.pk,
        "/api/v1/chats/*/messages/": ChatMessageFactory(chat=chat, author=admin).pk,
        "/api/v1/clients/": client.pk,
        "/api/v1/conversations/": conversation.pk,
        "/api/v1/conversations/*/messages/": message.pk,
        "/api/v1/notifications/": notification.pk,
        "/api/v1/email/accounts/": EmailAccountFactory(company=company, owner=None).pk,
        "/api/v1/meta/pages/": MessengerPageFactory(company=company).pk,
        "/api/v1/meta/instagram-accounts/": InstagramAccountFactory(company=company).pk,
        "/api/v1/telegram/accounts/": TelegramAccountFactory(company=company).pk,
        "/api/v1/tokens/": api_token.pk,
        "/api/v1/whatsapp/bots/": rule.bot_id,
        "/api/v1/whatsapp/bots/*/rules/": rule.pk,
        "/api/v1/whatsapp/broadcasts/": broadcast.pk,
        "/api/v1/whatsapp/numbers/": number.pk,
        "/api/v1/whatsapp/sessions/": WhatsAppSessionFactory(number=number).pk,
        "/api/v1/members/": UserFactory(company=company).pk,
        "/api/v1/invitations/": _invitation(company).pk,
        "/api/v1/teams/": _team(company, admin).pk,
        "/api/v1/canned-replies/": _canned_reply(company).pk,
        "/api/v1/pipelines/": PipelineFactory(company=company).pk,
        "/api/v1/deals/": DealFactory(company=company, client=client, owner=None).pk,
        "/api/v1/labels/": Label.objects.create(company=company, name="VIP").pk,
        "/api/v1/saved-views/": SavedView.objects.create(
            company=company, owner=admin, name="Open", filters={"status": "open"}
        ).pk,
        "/api/v1/exports/": _finished_export(admin, number),
    }


def _finished_export(admin, number) -> int:
    """A built export of the number (its archive on disk), for the download's read."""
    from exports import services
    from exports.tasks import build_export

    job = services.start_export(admin, "whatsapp", number.pk)
    build_export(job.pk)
    return job.pk


@pytest.fixture
def seeded(db, company):
    admin = UserFactory(company=company, role=Role.ADMIN, username="schema-admin")
    api_token, raw = ApiToken.issue(admin, "conformance")
    return raw, seed_company(company, admin, api_token)


@pytest.fixture
def token(seeded):
    return seeded[0]


@pytest.fixture
def api_schema(token):
    # As Django's test client does: a request must not close the test's (transaction's)
    # database connection at its end.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(
            "/api/schema/?format=json",
            get_wsgi_application(),
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_as_its_schema_says(case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


def _path_parameters(path: str, ids: dict[str, int]) -> dict[str, int]:
    """{name: id} for each {name} in path, from the collection path before it."""
    values, collection = {}, ""
    for literal, name in re.findall(r"([^{]*)(?:\{(\w+)\})?", path):
        collection += literal
        if name:
            values[name] = ids[collection]
            collection += "*"
    return values


@pytest.mark.django_db
def test_every_read_of_a_real_object_answers_as_its_schema_says(api_schema, seeded):
    token, ids = seeded
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() != "GET" or "{" not in operation.path:
            continue
        case = operation.Case(path_parameters=_path_parameters(operation.path, ids))
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        # 503: a session health check that finds the session down (documented as such).
        assert response.status_code in (200, 503), (operation.path, response.text[:300])
        case.validate_response(response, checks=CHECKS)
        checked.append(operation.path)
    assert "/api/v1/conversations/{id}/" in checked
    assert len(checked) >= 19
