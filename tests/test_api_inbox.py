"""The inbox REST API: filters, cursor pagination, constant queries, actions, sending."""

import pytest

from messaging.models import Message

from .factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/conversations/"


def _count_queries(api, url):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = api.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries), response.json()


@pytest.mark.parametrize("url", [URL, f"{URL}?status=open&assignee=unassigned&unread=1&q=a"])
def test_list_runs_a_constant_number_of_queries(
    api_for, agent_user, url, django_assert_max_num_queries
):
    api = api_for(agent_user)
    ConversationFactory(company=agent_user.company, unread_count=1, client__name="Anna")
    one, body = _count_queries(api, url)
    assert len(body["results"]) == 1
    ConversationFactory.create_batch(
        49, company=agent_user.company, unread_count=2, client__name="Alan"
    )
    fifty, body = _count_queries(api, url)
    assert len(body["results"]) == 50
    assert one == fifty


def test_messages_list_runs_a_constant_number_of_queries(api_for, agent_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    api = api_for(agent_user)
    conversation = ConversationFactory(company=agent_user.company)
    counts = []
    for batch in (1, 49):
        MessageFactory.create_batch(batch, conversation=conversation)
        with CaptureQueriesContext(connection) as captured:
            response = api.get(f"{URL}{conversation.pk}/messages/")
        counts.append(len(captured.captured_queries))
    assert len(response.json()["results"]) == 50
    assert counts[0] == counts[1]


def test_filters_and_newest_first_cursor_pages(api_for, agent_user):
    from datetime import timedelta

    from django.utils import timezone

    api = api_for(agent_user)
    company = agent_user.company
    now = timezone.now()
    mine = ConversationFactory(company=company, assignee=agent_user, last_message_at=now)
    closed = ConversationFactory(
        company=company, status="closed", last_message_at=now - timedelta(minutes=1)
    )
    unread = ConversationFactory(
        company=company,
        unread_count=3,
        last_message_at=now - timedelta(minutes=2),
        client__name="Zoë Example",
    )
    ids = lambda response: [row["id"] for row in response.json()["results"]]  # noqa: E731
    # Open ones by default, as the inbox page; `all` asks for every state.
    assert ids(api.get(URL)) == [mine.pk, unread.pk]
    assert ids(api.get(f"{URL}?status=all")) == [mine.pk, closed.pk, unread.pk]
    assert ids(api.get(f"{URL}?status=open")) == [mine.pk, unread.pk]
    assert ids(api.get(f"{URL}?assignee=me")) == [mine.pk]
    assert ids(api.get(f"{URL}?assignee=unassigned")) == [unread.pk]
    assert ids(api.get(f"{URL}?assignee=unassigned&status=all")) == [closed.pk, unread.pk]
    assert ids(api.get(f"{URL}?status=closed")) == [closed.pk]
    assert ids(api.get(f"{URL}?unread=1")) == [unread.pk]
    assert ids(api.get(f"{URL}?q=zoë")) == [unread.pk]
    assert ids(api.get(f"{URL}?platform=telegram")) == []

    bad = api.get(f"{URL}?status=done")
    assert bad.status_code == 400 and "status" in bad.json()
    assert "“done”" in bad.json()["status"][0]

    first = api.get(f"{URL}?page_size=2&status=all")
    assert ids(first) == [mine.pk, closed.pk]
    second = api.get(first.json()["next"])
    assert ids(second) == [unread.pk] and second.json()["next"] is None


def test_assign_close_reopen_and_read(api_for, agent_user, other_company):
    api = api_for(agent_user)
    colleague = UserFactory(company=agent_user.company)
    stranger = UserFactory(company=other_company)
    conversation = ConversationFactory(company=agent_user.company, unread_count=4)
    url = f"{URL}{conversation.pk}/"

    assert (
        api.post(f"{url}assign/", {"assignee": colleague.pk}, format="json").json()["assignee"][
            "id"
        ]
        == colleague.pk
    )
    response = api.post(f"{url}assign/", {"assignee": stranger.pk}, format="json")
    assert response.status_code == 400 and "assignee" in response.json()
    assert api.post(f"{url}assign/", {"assignee": "abc"}, format="json").status_code == 400
    assert api.post(f"{url}assign/", {"assignee": None}, format="json").json()["assignee"] is None
    assert api.post(f"{url}close/").json()["status"] == "closed"
    assert api.post(f"{url}reopen/").json()["status"] == "open"
    assert api.post(f"{url}read/").json()["unread_count"] == 0


def test_send_through_the_api(
    api_for, agent_user, queued_sends, django_capture_on_commit_callbacks
):
    queued = queued_sends
    api = api_for(agent_user)
    conversation = ConversationFactory(company=agent_user.company)
    url = f"{URL}{conversation.pk}/messages/"

    response = api.post(url, {"body": ""}, format="json")
    assert response.status_code == 400 and "body" in response.json()
    response = api.post(url, {"body": "y" * 5000}, format="json")
    assert response.status_code == 400 and "4096" in response.json()["body"][0]
    assert api.post(url, {}, format="json").status_code == 400
    assert Message.objects.count() == 0

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(url, {"body": "Thanks, on it"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert queued == [(body["id"], None)]  # the send task is queued after commit
    assert body["status"] == "queued" and body["author_id"] == agent_user.pk
    listing = api.get(url).json()["results"]
    assert [row["id"] for row in listing] == [body["id"]]


def test_list_rows_have_the_same_shape_as_the_detail(api_for, agent_user):
    colleague = UserFactory(company=agent_user.company, first_name="Ana", last_name="Lima")
    conversation = ConversationFactory(company=agent_user.company, assignee=colleague, subject="Hi")
    ConversationFactory(company=agent_user.company, client=None)
    api = api_for(agent_user)
    rows = {row["id"]: row for row in api.get(URL).json()["results"]}
    assert rows[conversation.pk] == api.get(f"{URL}{conversation.pk}/").json()
    assert rows[conversation.pk]["assignee"] == {"id": colleague.pk, "name": "Ana Lima"}
    assert next(row for pk, row in rows.items() if pk != conversation.pk)["client"] is None
