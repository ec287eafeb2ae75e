"""Labels, saved views and bulk actions on the real PostgreSQL: Settings → Labels, labels on a
conversation and a client (page and API), the inbox label filter, saved views with live counts,
bulk assign/label/close with partial failures named, the contact panel, and tenancy: another
company's labels and views are 404 and never applied across companies."""

import threading

import pytest
from django.urls import reverse

from messaging import realtime
from messaging.models import Conversation
from notifications.models import Notification
from triage.models import ClientLabel, ConversationLabel, Label, SavedView
from triage.selectors import views_with_counts

from .factories import (
    ClientFactory,
    ConversationFactory,
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def events(monkeypatch):
    sent = []
    lock = threading.Lock()

    def record(groups, payload):
        with lock:
            sent.append((payload["event"], payload["data"], list(groups)))

    monkeypatch.setattr(realtime, "publish_soon", record)
    return sent


@pytest.fixture
def member(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def agent(client, agent_user):
    client.force_login(agent_user)
    return client


def _label(company, name="VIP", color="green"):
    return Label.objects.create(company=company, name=name, color=color)


# ---------------------------------------------------------------- Settings → Labels


def test_admin_creates_renames_recolours_and_deletes_a_label_with_counts(
    member, company, events, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(reverse("label_list"), {"name": " VIP ", "color": "red"})
    assert response.status_code == 302
    label = Label.objects.get(company=company)
    assert (label.name, label.color) == ("VIP", "red")
    assert [e for e, *_ in events] == ["label.created"]

    page = member.get(reverse("label_list")).content.decode()
    assert 'class="label-chip label-red"' in page and "style=" not in page

    # The same name again (any case), an empty one, a colour outside the palette: 400s.
    for data, field_text in [
        ({"name": "vip", "color": "red"}, "already has a label"),
        ({"name": "", "color": "red"}, "Give the label a name"),
        ({"name": "Other", "color": "#ff0000"}, "Choose one of"),
    ]:
        response = member.post(reverse("label_list"), data)
        assert response.status_code == 400 and field_text in response.content.decode()
    assert Label.objects.filter(company=company).count() == 1

    member.post(reverse("label_edit", args=[label.pk]), {"name": "Gold", "color": "yellow"})
    label.refresh_from_db()
    assert (label.name, label.color) == ("Gold", "yellow")

    conversations = ConversationFactory.create_batch(3, company=company)
    for conversation in conversations:
        ConversationLabel.objects.create(conversation=conversation, label=label)
    ClientLabel.objects.create(client=ClientFactory(company=company), label=label)
    confirm = member.get(reverse("label_delete", args=[label.pk])).content.decode()
    assert "It is on 3 conversations" in confirm and "and 1 client." in confirm
    events.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(reverse("label_delete", args=[label.pk]))
    assert response.status_code == 302
    assert not Label.objects.filter(pk=label.pk).exists()
    assert ConversationLabel.objects.count() == 0 and ClientLabel.objects.count() == 0
    assert all(c.__class__.objects.filter(pk=c.pk).exists() for c in conversations)
    assert [e for e, *_ in events] == ["label.deleted"]


def test_agents_use_labels_but_do_not_manage_them(agent, company):
    label = _label(company)
    assert agent.post(reverse("label_list"), {"name": "X", "color": "red"}).status_code == 403
    assert agent.post(reverse("label_delete", args=[label.pk])).status_code == 403
    assert Label.objects.filter(company=company).count() == 1
    conversation = ConversationFactory(company=company)
    response = agent.post(
        reverse("conversation_labels", args=[conversation.pk]), {"labels": [label.pk]}, **HTMX
    )
    assert response.status_code == 200
    assert list(conversation.label_links.values_list("label_id", flat=True)) == [label.pk]


def test_another_companys_label_pages_are_404(member, other_company):
    foreign = _label(other_company)
    for name in ("label_edit", "label_delete"):
        assert member.get(reverse(name, args=[foreign.pk])).status_code == 404
        assert member.post(reverse(name, args=[foreign.pk]), {"name": "x"}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.name == "VIP"


# ---------------------------------------------------------------- labels on things


def test_labels_on_a_conversation_and_its_client_from_the_side_panel(
    member, company, events, django_capture_on_commit_callbacks
):
    vip, hot = _label(company, "VIP", "green"), _label(company, "Hot", "red")
    client = ClientFactory(company=company, name="Maria Ortiz")
    conversation = ConversationFactory(company=company, client=client)
    url = reverse("conversation_labels", args=[conversation.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(url, {"labels": [vip.pk, hot.pk]}, **HTMX)
    assert response.status_code == 200
    panel = response.content.decode()
    assert panel.strip().startswith('<aside id="contact-panel"')
    assert set(conversation.label_links.values_list("label_id", flat=True)) == {vip.pk, hot.pk}
    assert (
        "conversation.labeled",
        {"id": conversation.pk, "label_ids": sorted([hot.pk, vip.pk])},
    ) in [(e, d) for e, d, _g in events]

    # Removing one keeps the other; the client's labels are their own.
    member.post(url, {"labels": [vip.pk]}, **HTMX)
    member.post(url, {"labels": [hot.pk], "client": "1"}, **HTMX)
    assert list(conversation.label_links.values_list("label_id", flat=True)) == [vip.pk]
    assert list(client.label_links.values_list("label_id", flat=True)) == [hot.pk]

    # The inbox row and the client page show them.
    row = member.get(reverse("inbox")).content.decode()
    assert 'label-chip label-green">VIP' in row
    client_page = member.get(reverse("client_detail", args=[client.pk])).content.decode()
    assert 'label-chip label-red">Hot' in client_page
    member.post(reverse("client_labels", args=[client.pk]), {"labels": []})
    assert not client.label_links.exists()


def test_another_companys_label_is_never_applied(member, company, other_company):
    foreign = _label(other_company, "Theirs")
    conversation = ConversationFactory(company=company)
    response = member.post(
        reverse("conversation_labels", args=[conversation.pk]), {"labels": [foreign.pk]}, **HTMX
    )
    assert response.status_code == 400
    assert not ConversationLabel.objects.exists()
    client = ClientFactory(company=company)
    response = member.post(reverse("client_labels", args=[client.pk]), {"labels": [foreign.pk]})
    assert response.status_code == 400 and not ClientLabel.objects.exists()
    # Nor on another company's conversation with our label.
    theirs = ConversationFactory(company=other_company)
    mine = _label(company)
    response = member.post(
        reverse("conversation_labels", args=[theirs.pk]), {"labels": [mine.pk]}, **HTMX
    )
    assert response.status_code == 404 and not ConversationLabel.objects.exists()


def test_inbox_filters_by_label(member, company, other_company):
    vip = _label(company)
    tagged = ConversationFactory(company=company)
    ConversationFactory(company=company)
    ConversationLabel.objects.create(conversation=tagged, label=vip)
    foreign = _label(other_company)
    theirs = ConversationFactory(company=other_company)
    ConversationLabel.objects.create(conversation=theirs, label=foreign)

    def shown(**params):
        response = member.get(reverse("inbox"), params)
        return [c.pk for c in response.context["page"].object_list]

    assert shown(label=vip.pk) == [tagged.pk]
    assert shown(label=foreign.pk) == []  # another company's label matches nothing
    assert shown(label="nope") == []


def test_api_labels_crud_and_set_on_conversation_and_client(admin_api, company, other_company):
    response = admin_api.post("/api/v1/labels/", {"name": "VIP", "color": "purple"}, format="json")
    assert response.status_code == 201, response.content
    label_id = response.json()["id"]
    response = admin_api.post("/api/v1/labels/", {"name": "vip"}, format="json")
    assert response.status_code == 400 and "name" in response.json()
    response = admin_api.post("/api/v1/labels/", {"name": "X", "color": "neon"}, format="json")
    assert response.status_code == 400 and "color" in response.json()
    response = admin_api.patch(f"/api/v1/labels/{label_id}/", {"color": "teal"}, format="json")
    assert response.json()["color"] == "teal" and response.json()["name"] == "VIP"

    conversation = ConversationFactory(company=company)
    url = f"/api/v1/conversations/{conversation.pk}/labels/"
    response = admin_api.post(url, {"labels": [label_id]}, format="json")
    assert response.json() == {"id": conversation.pk, "label_ids": [label_id]}
    assert admin_api.get(f"/api/v1/conversations/{conversation.pk}/").json()["labels"] == [label_id]
    listed = admin_api.get("/api/v1/conversations/", {"label": label_id}).json()["results"]
    assert [row["id"] for row in listed] == [conversation.pk] and listed[0]["labels"] == [label_id]
    foreign = _label(other_company)
    response = admin_api.post(url, {"labels": [foreign.pk]}, format="json")
    assert response.status_code == 400 and "labels" in response.json()
    response = admin_api.post(url, {"labels": "VIP"}, format="json")
    assert response.status_code == 400

    client = ClientFactory(company=company)
    response = admin_api.post(
        f"/api/v1/clients/{client.pk}/labels/", {"labels": [label_id]}, format="json"
    )
    assert response.json()["label_ids"] == [label_id]
    assert admin_api.get(f"/api/v1/labels/{label_id}/usage/").json() == {
        "conversations": 1,
        "clients": 1,
    }
    theirs = ClientFactory(company=other_company)
    response = admin_api.post(
        f"/api/v1/clients/{theirs.pk}/labels/", {"labels": [label_id]}, format="json"
    )
    assert response.status_code == 404
    assert admin_api.delete(f"/api/v1/labels/{label_id}/").status_code == 204
    assert not ConversationLabel.objects.exists()


def test_api_agents_cannot_manage_labels(api_for, agent_user, company):
    api = api_for(agent_user)
    assert api.post("/api/v1/labels/", {"name": "X"}, format="json").status_code == 403
    label = _label(company)
    assert api.delete(f"/api/v1/labels/{label.pk}/").status_code == 403
    assert api.get("/api/v1/labels/").json()["results"][0]["id"] == label.pk


# ---------------------------------------------------------------- saved views


def test_saved_views_personal_and_shared_with_live_counts(
    member, company, admin_user, agent_user, django_assert_num_queries
):
    vip = _label(company)
    mine = ConversationFactory(company=company, assignee=admin_user)
    ConversationLabel.objects.create(conversation=mine, label=vip)
    ConversationFactory(company=company, status="closed", assignee=admin_user)
    ConversationFactory(company=company)

    response = member.post(
        reverse("saved_view_list"),
        {"name": "My VIPs", "status": "open", "assigned": "mine", "label": vip.pk},
    )
    assert response.status_code == 302
    view = SavedView.objects.get()
    assert view.filters == {"status": "open", "assigned": "mine", "label": vip.pk}
    assert response["Location"].endswith(f"?{view.query}")
    member.post(
        reverse("saved_view_list"), {"name": "All closed", "status": "closed", "shared": "1"}
    )
    SavedView.objects.create(company=company, owner=agent_user, name="Agent's own", filters={})

    # The session comes from Redis (cached_db): user, the views, one aggregate for all counts.
    with django_assert_num_queries(3):
        sidebar = member.get(reverse("saved_view_list")).content.decode()
    assert "My VIPs" in sidebar and "All closed" in sidebar and "Agent&#x27;s own" not in sidebar
    counts = {v.name: v.count for v in views_with_counts(admin_user)}
    assert counts == {"My VIPs": 1, "All closed": 1}

    # Counts follow the conversations.
    mine.status = "closed"
    mine.save()
    counts = {v.name: v.count for v in views_with_counts(admin_user)}
    assert counts == {"My VIPs": 0, "All closed": 2}

    # The inbox marks the current view.
    page = member.get(reverse("inbox") + "?" + view.query).content.decode()
    assert 'is-current" aria-current="true"' in page


def test_saved_view_rename_share_delete_and_who_may(
    client, member, company, admin_user, agent_user
):
    view = SavedView.objects.create(
        company=company, owner=admin_user, name="Old", shared=True, filters={"status": "open"}
    )
    member.post(reverse("savedview_edit", args=[view.pk]), {"name": "New", "shared": "1"})
    view.refresh_from_db()
    assert view.name == "New" and view.shared
    response = member.post(reverse("savedview_edit", args=[view.pk]), {"name": " "})
    assert response.status_code == 400

    # A colleague sees the shared view but may not change it; their personal one is a 404.
    client.force_login(agent_user)
    assert client.get(reverse("savedview_edit", args=[view.pk])).status_code == 200
    assert client.post(reverse("savedview_delete", args=[view.pk])).status_code == 403
    theirs = SavedView.objects.create(company=company, owner=admin_user, name="Private")
    assert client.get(reverse("savedview_edit", args=[theirs.pk])).status_code == 404
    client.force_login(admin_user)
    assert client.post(reverse("savedview_delete", args=[view.pk])).status_code == 302
    assert not SavedView.objects.filter(pk=view.pk).exists()


def test_saved_view_bad_filters_are_refused(member, admin_api, company, other_company):
    foreign = _label(other_company)
    member.post(reverse("saved_view_list"), {"name": "X", "label": foreign.pk})
    member.post(reverse("saved_view_list"), {"name": "Y", "status": "sleepy"})
    assert not SavedView.objects.exists()
    response = admin_api.post(
        "/api/v1/saved-views/", {"name": "Z", "filters": {"label": foreign.pk}}, format="json"
    )
    assert response.status_code == 400 and "filters.label" in response.json()
    response = admin_api.post("/api/v1/saved-views/", {"name": "", "filters": {}}, format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_api_saved_views(admin_api, company, admin_user, other_company):
    ConversationFactory.create_batch(2, company=company)
    response = admin_api.post(
        "/api/v1/saved-views/", {"name": "Open", "filters": {"status": "open"}}, format="json"
    )
    assert response.status_code == 201, response.content
    view_id = response.json()["id"]
    listed = admin_api.get("/api/v1/saved-views/").json()["results"]
    assert [(v["id"], v["count"]) for v in listed] == [(view_id, 2)]
    response = admin_api.patch(
        f"/api/v1/saved-views/{view_id}/", {"name": "Renamed", "shared": True}, format="json"
    )
    assert response.json()["name"] == "Renamed" and response.json()["shared"] is True
    other = SavedView.objects.create(
        company=other_company, owner=UserFactory(company=other_company), name="T", shared=True
    )
    assert admin_api.get(f"/api/v1/saved-views/{other.pk}/").status_code == 404
    assert admin_api.delete(f"/api/v1/saved-views/{view_id}/").status_code == 204


# ---------------------------------------------------------------- bulk actions


def test_bulk_assign_label_close_with_failures_named(
    member,
    company,
    admin_user,
    agent_user,
    other_company,
    events,
    django_capture_on_commit_callbacks,
):
    vip = _label(company)
    mine = ConversationFactory.create_batch(3, company=company)
    theirs = ConversationFactory(company=other_company)
    ids = [c.pk for c in mine] + [theirs.pk, 999999999]
    url = reverse("inbox_bulk")

    with django_capture_on_commit_callbacks(execute=True):
        response = member.post(
            url,
            {
                "ids": ids,
                "action": "assign",
                "assignee": agent_user.pk,
                "next": "/inbox/?status=all",
            },
            follow=True,
        )
    assert response.redirect_chain[-1][0] == "/inbox/?status=all"
    # The assignee is told of each conversation (one notification each, all in one batch).
    told = Notification.objects.filter(user=agent_user, kind="assigned")
    assert sorted(told.values_list("conversation_id", "subject")) == sorted(
        (c.pk, c.client.name) for c in mine
    )
    pushed = [d for e, d, *_ in events if e == "notification.created"]
    assert sorted(d["conversation_id"] for d in pushed) == sorted(c.pk for c in mine)
    text = response.content.decode()
    assert "Done for 3 conversations" in text
    assert f"Conversation #{theirs.pk}: Not found." in text and "#999999999" in text
    assert {c.assignee_id for c in type(mine[0]).objects.filter(pk__in=ids[:3])} == {agent_user.pk}
    theirs.refresh_from_db()
    assert theirs.assignee_id is None

    with django_capture_on_commit_callbacks(execute=True):
        member.post(url, {"ids": ids[:3], "action": "label", "label": vip.pk})
    assert ConversationLabel.objects.filter(label=vip).count() == 3
    assert len([e for e, *_ in events if e == "conversation.labeled"]) == 3
    member.post(url, {"ids": ids[:1], "action": "unlabel", "label": vip.pk})
    assert ConversationLabel.objects.filter(label=vip).count() == 2

    member.post(url, {"ids": ids, "action": "close"})
    assert set(type(mine[0]).objects.filter(pk__in=ids[:3]).values_list("status", flat=True)) == {
        "closed"
    }
    theirs.refresh_from_db()
    assert theirs.status == "open"

    # Bad input: named, nothing done.
    foreign_label = _label(other_company)
    for data, text in [
        ({"ids": [], "action": "close"}, "Select at least one"),
        ({"ids": ids[:1], "action": "explode"}, "Must be one of"),
        ({"ids": ids[:1], "action": "label", "label": foreign_label.pk}, "your company"),
        ({"ids": ids[:1], "action": "assign", "assignee": "abc"}, "member of your company"),
        ({"ids": ["x"], "action": "close"}, "numbers"),
    ]:
        response = member.post(url, data, follow=True)
        assert text in response.content.decode(), data
    assert not ConversationLabel.objects.filter(label=foreign_label).exists()


def test_a_bulk_assignment_tells_the_assignee_in_the_same_few_queries_for_any_number(
    company, admin_user, agent_user, django_capture_on_commit_callbacks
):
    """Telling of 2 conversations or of 20 costs the same queries (it was ~6 per conversation,
    half of a 1,000-conversation "select all")."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from notifications.services import conversations_assigned

    def queries_for(count: int) -> int:
        batch = list(
            Conversation.objects.select_related("client").filter(
                pk__in=[
                    c.pk
                    for c in ConversationFactory.create_batch(
                        count, company=company, assignee=agent_user
                    )
                ]
            )
        )
        with CaptureQueriesContext(connection) as queries:
            with django_capture_on_commit_callbacks(execute=True):
                conversations_assigned(admin_user, batch)
        return len(queries)

    assert queries_for(2) == queries_for(20)
    assert Notification.objects.filter(user=agent_user, kind="assigned").count() == 22


def test_bulk_on_every_conversation_of_the_filtered_list(
    member, company, other_company, admin_user, agent_user, monkeypatch
):
    """ "Select all": the action goes to every conversation the list's filters show, on every
    page (not only the loaded one), through the service; never another company's."""
    from triage import services as triage_services

    vip = _label(company)
    open_ones = ConversationFactory.create_batch(55, company=company)  # more than a page (50)
    closed = ConversationFactory(company=company, status="closed")
    on_telegram = ConversationFactory(
        company=company, source=TelegramAccountFactory(company=company)
    )
    theirs = ConversationFactory(company=other_company)
    url = reverse("inbox_bulk")

    # The whole list of open WhatsApp conversations: 55 of them (two pages).
    response = member.post(
        url,
        {"all": "1", "filters": "platform=whatsapp", "action": "label", "label": vip.pk},
        follow=True,
    )
    assert "Done for 55 conversations" in response.content.decode()
    labelled = set(
        ConversationLabel.objects.filter(label=vip).values_list("conversation_id", flat=True)
    )
    assert labelled == {c.pk for c in open_ones}
    # Another filter: the labelled ones, every state; assign them all to bob.
    member.post(
        url,
        {
            "all": "1",
            "filters": f"label={vip.pk}&status=all",
            "action": "assign",
            "assignee": agent_user.pk,
        },
    )
    assignees = {c.assignee_id for c in type(closed).objects.filter(pk__in=labelled)}
    assert assignees == {agent_user.pk}
    # Close every open one (the default status): the closed one and the other company's stay.
    member.post(url, {"all": "1", "filters": "", "action": "close"})
    model = type(closed)
    assert model.objects.filter(company=company, status="open").count() == 0
    assert model.objects.get(pk=on_telegram.pk).status == "closed"
    theirs.refresh_from_db()
    assert theirs.status == "open" and theirs.assignee_id is None

    # Over the cap: refused as a whole, named, nothing changed.
    monkeypatch.setattr(triage_services, "BULK_ALL_MAX", 10)
    response = member.post(
        url,
        {"all": "1", "filters": "status=all", "action": "unlabel", "label": vip.pk},
        follow=True,
    )
    assert "At most 10 conversations at once" in response.content.decode()
    assert ConversationLabel.objects.filter(label=vip).count() == 55


def test_the_label_menus_are_drawn_again_with_the_company_labels(member, company, other_company):
    vip = _label(company, "VIP")
    _label(other_company, "Secret")
    page = member.get(reverse("inbox")).content.decode()
    assert 'id="label-filter-box"' in page and 'id="bulk-label-box"' in page
    assert f'data-label-menus-url="{reverse("inbox_label_menus")}"' in page
    response = member.get(reverse("inbox_label_menus"), {"label": vip.pk}, **HTMX)
    text = response.content.decode()
    assert response.status_code == 200
    assert f'<option value="{vip.pk}" selected>VIP</option>' in text
    assert 'data-action="bulk-label"' in text and "Secret" not in text
    Label.objects.filter(company=company).delete()
    text = member.get(reverse("inbox_label_menus")).content.decode()
    assert 'id="label-filter-box"' in text and "<select" not in text  # the wrappers stay


def test_api_bulk(admin_api, company, other_company, admin_user):
    mine = ConversationFactory(company=company)
    theirs = ConversationFactory(company=other_company)
    response = admin_api.post(
        "/api/v1/conversations/bulk/",
        {"ids": [mine.pk, theirs.pk], "action": "assign", "assignee": admin_user.pk},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {
        "done": [mine.pk],
        "failed": [{"id": theirs.pk, "error": "Not found."}],
    }
    response = admin_api.post(
        "/api/v1/conversations/bulk/", {"ids": [mine.pk], "action": "label"}, format="json"
    )
    assert response.status_code == 400 and "label" in response.json()
    response = admin_api.post(
        "/api/v1/conversations/bulk/", {"ids": [], "action": "close"}, format="json"
    )
    assert response.status_code == 400 and "ids" in response.json()


def test_api_bulk_on_every_conversation_the_filters_show(
    admin_api, company, other_company, monkeypatch
):
    from triage import services as triage_services

    on_telegram = ConversationFactory.create_batch(
        3, company=company, source=TelegramAccountFactory(company=company)
    )
    closed = ConversationFactory(company=company, status="closed")
    elsewhere = ConversationFactory(company=company)
    theirs = ConversationFactory(company=other_company)
    url = "/api/v1/conversations/bulk/"
    response = admin_api.post(
        url, {"all": True, "filters": {"platform": "telegram"}, "action": "close"}, format="json"
    )
    assert response.status_code == 200
    assert sorted(response.json()["done"]) == sorted(c.pk for c in on_telegram)
    model = type(closed)
    assert model.objects.get(pk=elsewhere.pk).status == "open"
    assert model.objects.get(pk=theirs.pk).status == "open"
    # status=all reaches the closed ones too; the default (open) does not.
    response = admin_api.post(url, {"all": True, "action": "close"}, format="json")
    assert response.json()["done"] == [elsewhere.pk]
    assert model.objects.get(pk=theirs.pk).status == "open"
    # Bad input: named, nothing changed.
    bad = admin_api.post(
        url, {"all": True, "filters": {"status": "done"}, "action": "close"}, format="json"
    )
    assert bad.status_code == 400 and "status" in bad.json()
    assert admin_api.post(url, {"action": "close"}, format="json").json().keys() == {"ids"}
    monkeypatch.setattr(triage_services, "BULK_ALL_MAX", 2)
    vip = _label(company)
    over = admin_api.post(
        url,
        {"all": True, "filters": {"status": "all"}, "action": "label", "label": vip.pk},
        format="json",
    )
    assert over.status_code == 400 and "ids" in over.json()
    assert not ConversationLabel.objects.exists()


# ---------------------------------------------------------------- the contact panel


def test_contact_panel_shows_client_labels_and_other_conversations(member, company, other_company):
    client = ClientFactory(company=company, name="Maria Ortiz", email="maria@example.com")
    vip = _label(company, "VIP")
    ClientLabel.objects.create(client=client, label=vip)
    here = ConversationFactory(company=company, client=client)
    on_telegram = ConversationFactory(
        company=company, client=client, source=TelegramAccountFactory(company=company)
    )
    by_mail = ConversationFactory(
        company=company,
        client=client,
        status="closed",
        source=EmailAccountFactory(company=company),
        subject="Invoice 42",
    )
    stranger = ConversationFactory(company=company)
    page = member.get(reverse("conversation_detail", args=[here.pk])).content.decode()
    panel = page[page.index('id="contact-panel"') :]
    assert "Maria Ortiz" in panel and "maria@example.com" in panel
    assert 'label-chip label-green" data-label-id' in panel or "VIP" in panel
    assert reverse("conversation_detail", args=[on_telegram.pk]) in panel
    assert reverse("conversation_detail", args=[by_mail.pk]) in panel and "Invoice 42" in panel
    assert (
        reverse("conversation_detail", args=[stranger.pk]) + '"' not in panel.split("</aside>")[0]
    )
    # The client's open deals (only theirs, only open ones) and the one-click "New deal".
    from .factories import DealFactory

    sofa = DealFactory(company=company, client=client, title="Corner sofa")
    DealFactory(company=company, client=client, title="Old chair", status="lost")
    DealFactory(company=company, title="Someone else's")
    page = member.get(reverse("conversation_detail", args=[here.pk])).content.decode()
    panel = page[page.index('id="contact-panel"') :].split("</aside>")[0]
    deals = panel[panel.index('data-role="client-deals"') :]
    assert f'data-deal="{sofa.pk}"' in deals and "Corner sofa" in deals
    assert "Old chair" not in deals and "Someone else" not in deals
    assert reverse("conversation_deal_create", args=[here.pk]) in deals
    assert page.count('id="conversation-deals"') == 1  # in the panel only
    # The include point for other parts of the product is there.
    assert (
        "crm/_conversation_side_extra.html" in open("templates/triage/_contact_panel.html").read()
    )


def test_view_counts_with_a_view_of_everything(company, admin_user):
    ConversationFactory(company=company, status="closed")
    ConversationFactory(company=company)
    SavedView.objects.create(
        company=company, owner=admin_user, name="All", filters={"status": "all"}
    )
    SavedView.objects.create(company=company, owner=admin_user, name="Open", filters={})
    counts = {v.name: v.count for v in views_with_counts(admin_user)}
    assert counts == {"All": 2, "Open": 1}
