"""Deals: pipelines and stages, one-click deals from a conversation, automatic deals for new
clients, moves with history, won/lost, the board and list pages, the API, and deleting a
pipeline (preview, then one cascading DELETE)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from deals import services
from deals.models import ChannelDealSetting, Deal, Pipeline, Stage, StageChange
from messaging import realtime
from messaging.services import Sender, ingest_inbound

from .factories import (
    ClientFactory,
    ConversationFactory,
    DealFactory,
    PipelineFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch):
    """Events that left the server: [(event, data, groups)]."""
    sent = []
    monkeypatch.setattr(
        realtime,
        "publish_soon",
        lambda groups, payload: sent.append((payload["event"], payload["data"], groups)),
    )
    return sent


def _names(published):
    return [event for event, _data, _groups in published]


def test_one_click_on_a_conversation_creates_a_deal_for_its_client(
    client, admin_user, published, django_capture_on_commit_callbacks
):
    conversation = ConversationFactory(company=admin_user.company)
    client.force_login(admin_user)
    page = client.get(reverse("conversation_detail", args=[conversation.pk]))
    assert b'data-action="create-deal"' in page.content

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("conversation_deal_create", args=[conversation.pk]))
    deal = Deal.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/deals/{deal.pk}/"
    assert deal.client == conversation.client and deal.conversation == conversation
    assert deal.owner == admin_user and deal.company == admin_user.company
    pipeline = Pipeline.objects.get(company=admin_user.company, is_default=True)
    assert deal.pipeline == pipeline and deal.stage.position == 0
    assert [s.name for s in pipeline.stages.order_by("position")] == [
        "New",
        "Qualified",
        "Proposal",
        "Negotiation",
    ]
    [step] = deal.history.all()
    assert step.actor == admin_user and step.to_stage == deal.stage and not step.from_status
    [(event, data, groups)] = [p for p in published if p[0] == "deal.created"]
    assert data["id"] == deal.pk and groups == [f"company.{admin_user.company_id}"]

    # The conversation page now lists it among the client's open deals.
    page = client.get(reverse("conversation_detail", args=[conversation.pk]))
    assert f'data-deal="{deal.pk}"'.encode() in page.content


def test_another_companys_conversation_gets_no_deal(client, admin_user, other_company):
    conversation = ConversationFactory(company=other_company)
    client.force_login(admin_user)
    assert (
        client.post(reverse("conversation_deal_create", args=[conversation.pk])).status_code == 404
    )
    assert not Deal.objects.exists()


def test_moves_are_kept_in_the_history_and_published(
    admin_user, published, django_capture_on_commit_callbacks
):
    deal = DealFactory(company=admin_user.company)
    first, second, third, _fourth = deal.pipeline.stages.order_by("position")
    with django_capture_on_commit_callbacks(execute=True):
        services.move_deal(admin_user, deal, second.pk)
        services.move_deal(admin_user, deal, third)
        services.close_deal(admin_user, deal, "lost", "Too expensive")
    deal.refresh_from_db()
    assert deal.stage == third and deal.status == "lost" and deal.lost_reason == "Too expensive"
    assert deal.closed_at is not None
    steps = list(
        deal.history.values_list("from_name", "to_name", "from_status", "to_status", "reason")
    )
    assert steps[1:] == [
        ("New", "Qualified", "open", "open", ""),
        ("Qualified", "Proposal", "open", "open", ""),
        ("Proposal", "Proposal", "open", "lost", "Too expensive"),
    ]
    assert _names(published) == ["deal.moved", "deal.moved", "deal.updated"]


def test_a_lost_deal_needs_a_reason_and_a_stage_of_another_pipeline_is_refused(admin_user):
    deal = DealFactory(company=admin_user.company)
    other = PipelineFactory(company=admin_user.company).stages.first()
    with pytest.raises(Exception) as refused:
        services.close_deal(admin_user, deal, "lost", "  ")
    assert "lost_reason" in refused.value.message_dict
    with pytest.raises(Exception) as refused:
        services.move_deal(admin_user, deal, other.pk)
    assert "stage" in refused.value.message_dict
    deal.refresh_from_db()
    assert deal.status == "open" and deal.history.count() == 1


def test_api_creates_filters_moves_and_closes(admin_api, admin_user, other_company):
    me = admin_user.company
    pipeline = PipelineFactory(company=me)
    stages = list(pipeline.stages.order_by("position"))
    maria = ClientFactory(company=me, name="Maria")
    response = admin_api.post(
        "/api/v1/deals/",
        {
            "title": "200 chairs",
            "client": maria.pk,
            "pipeline": pipeline.pk,
            "amount": "1250.50",
            "currency": "USD",
            "owner": admin_user.pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    created = response.json()
    assert (
        created["stage"] == stages[0].pk
        and created["amount"] == "1250.50"
        and created["currency"] == "USD"
    )
    DealFactory(company=me, client=maria, pipeline=pipeline, amount=10, title="Small")

    # Bad input names the field; nothing is written.
    for body, field in (
        ({"title": "x", "client": maria.pk, "currency": "XYZ"}, "currency"),
        ({"title": "x", "client": maria.pk, "amount": "-1"}, "amount"),
        ({"title": "x", "client": ClientFactory(company=other_company).pk}, "client"),
        (
            {
                "title": "x",
                "client": maria.pk,
                "pipeline": PipelineFactory(company=other_company).pk,
            },
            "pipeline",
        ),
        ({"title": "", "client": maria.pk}, "title"),
        ({"title": "x", "client": 2**70}, "client"),
        ({"title": "x", "client": maria.pk, "stage": 2**64}, "stage"),
        (
            {"title": "x", "client": maria.pk, "owner": UserFactory(company=other_company).pk},
            "owner",
        ),
    ):
        answer = admin_api.post("/api/v1/deals/", body, format="json")
        assert answer.status_code == 400 and field in answer.json(), (body, answer.json())
    assert Deal.objects.filter(company=me).count() == 2

    listed = admin_api.get("/api/v1/deals/", {"amount_min": "100", "pipeline": pipeline.pk}).json()
    assert [row["title"] for row in listed["results"]] == ["200 chairs"]
    assert admin_api.get("/api/v1/deals/", {"amount_min": "lots"}).status_code == 400

    deal_id = created["id"]
    moved = admin_api.post(f"/api/v1/deals/{deal_id}/move/", {"stage": stages[2].pk}, format="json")
    assert moved.status_code == 200 and moved.json()["stage"] == stages[2].pk
    assert (
        admin_api.post(
            f"/api/v1/deals/{deal_id}/move/", {"stage": 999999}, format="json"
        ).status_code
        == 400
    )
    won = admin_api.post(f"/api/v1/deals/{deal_id}/close/", {"status": "won"}, format="json")
    assert won.json()["status"] == "won" and won.json()["closed_at"]
    history = admin_api.get(f"/api/v1/deals/{deal_id}/history/").json()
    assert [(h["from_name"], h["to_name"], h["to_status"]) for h in history] == [
        ("", "New", "open"),
        ("New", "Proposal", "open"),
        ("Proposal", "Proposal", "won"),
    ]


def test_pipeline_api_edits_stages_and_previews_before_deleting(admin_api, admin_user):
    response = admin_api.post(
        "/api/v1/pipelines/",
        {"name": "Wholesale", "stages": [{"name": "Lead"}, {"name": "Offer"}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    pipeline = Pipeline.objects.get(pk=response.json()["id"])
    lead, offer = pipeline.stages.order_by("position")
    DealFactory.create_batch(2, company=admin_user.company, pipeline=pipeline, stage=offer)
    # Renaming, reordering and adding; removing a stage that holds deals is refused.
    edited = admin_api.patch(
        f"/api/v1/pipelines/{pipeline.pk}/",
        {
            "stages": [
                {"id": offer.pk, "name": "Offer sent"},
                {"id": lead.pk, "name": "Lead"},
                {"name": "Signed"},
            ]
        },
        format="json",
    )
    assert edited.status_code == 200
    assert [s["name"] for s in edited.json()["stages"]] == ["Offer sent", "Lead", "Signed"]
    refused = admin_api.patch(
        f"/api/v1/pipelines/{pipeline.pk}/",
        {"stages": [{"id": lead.pk, "name": "Lead"}]},
        format="json",
    )
    assert refused.status_code == 400 and "stages" in refused.json()
    assert (
        admin_api.post(
            "/api/v1/pipelines/", {"name": "Wholesale", "stages": [{"name": "A"}]}, format="json"
        ).status_code
        == 400
    )

    preview = admin_api.get(f"/api/v1/pipelines/{pipeline.pk}/delete-preview/").json()
    assert preview == {"deals": 2, "open": 2, "won": 0, "lost": 0, "stages": 3, "history": 2}
    assert admin_api.delete(f"/api/v1/pipelines/{pipeline.pk}/").status_code == 204
    assert not Deal.objects.filter(pipeline_id=pipeline.pk).exists()
    assert not Stage.objects.filter(pipeline_id=pipeline.pk).exists()
    assert not StageChange.objects.exists()


def test_deleting_a_pipeline_is_one_sql_delete_cascading_in_the_database(admin_user, client):
    """The page shows the counts first; the delete is PostgreSQL's ON DELETE CASCADE."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pipeline = PipelineFactory(company=admin_user.company, name="Old")
    DealFactory.create_batch(3, company=admin_user.company, pipeline=pipeline)
    client.force_login(admin_user)
    page = client.get(reverse("pipeline_delete", args=[pipeline.pk]))
    assert b'data-count="deals">3<' in page.content and b'data-count="stages">4<' in page.content
    assert (
        client.post(
            reverse("pipeline_delete", args=[pipeline.pk]), {"confirm_name": "Wrong"}
        ).status_code
        == 400
    )
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            reverse("pipeline_delete", args=[pipeline.pk]), {"confirm_name": "Old"}
        )
    assert response.status_code == 302
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 1 and "deals_pipeline" in deletes[0]
    assert not Deal.objects.exists() and not StageChange.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_new_client_on_a_channel_with_automatic_deals_gets_exactly_one(admin_user, published):
    """Real commits: the deal comes from the after-commit signal of the ingested message."""
    number = WhatsAppNumberFactory(company=admin_user.company)
    quiet = WhatsAppNumberFactory(company=admin_user.company)
    old_client = ClientFactory(company=admin_user.company, phone="+4915100000777")
    pipeline = PipelineFactory(company=admin_user.company, name="Leads")
    services.set_channel_auto_deal(admin_user, number, pipeline)
    assert ChannelDealSetting.objects.get().pipeline == pipeline

    maria = Sender(address="+4915112345678", name="Maria Lopez", phone="+4915112345678")
    ingest_inbound(number, maria.phone, "wamid.1", maria, "Hi, I want to order")
    ingest_inbound(number, maria.phone, "wamid.2", maria, "Are you there?")
    [deal] = Deal.objects.all()
    assert deal.auto_created and deal.pipeline == pipeline and deal.stage.position == 0
    assert deal.client.name == "Maria Lopez" and deal.title == "New lead: Maria Lopez"
    assert deal.conversation.client == deal.client
    assert deal.history.count() == 1
    assert _names(published).count("deal.created") == 1

    # A client known from before the setting, and a channel without it: no deal.
    known = Sender(address=str(old_client.phone), name="Known", phone=str(old_client.phone))
    ingest_inbound(number, known.phone, "wamid.3", known, "Hello again")
    bob = Sender(address="+4915199999999", name="Bob", phone="+4915199999999")
    ingest_inbound(quiet, bob.phone, "wamid.4", bob, "Hi")
    assert Deal.objects.count() == 1


def test_board_and_list_pages(client, admin_user, other_company):
    pipeline = PipelineFactory(company=admin_user.company, name="Retail")
    new, qualified, *_ = pipeline.stages.order_by("position")
    a = DealFactory(
        company=admin_user.company,
        pipeline=pipeline,
        title="Sofa",
        amount=Decimal("900"),
        owner=admin_user,
    )
    b = DealFactory(
        company=admin_user.company,
        pipeline=pipeline,
        stage=qualified,
        title="Lamp",
        amount=Decimal("40"),
    )
    DealFactory(company=other_company, title="Secret")
    client.force_login(admin_user)
    board = client.get(reverse("deal_board"), {"pipeline": pipeline.pk}).content.decode()
    assert (
        f'data-deal="{a.pk}"' in board and f'data-deal="{b.pk}"' in board and "Secret" not in board
    )
    # The move form works without JavaScript (keyboard, phone): the select posts the stage.
    response = client.post(
        reverse("deal_move", args=[a.pk]),
        {"stage": qualified.pk, "next": f"/deals/?pipeline={pipeline.pk}"},
    )
    assert response.status_code == 302 and response["Location"] == f"/deals/?pipeline={pipeline.pk}"
    a.refresh_from_db()
    assert a.stage == qualified
    listing = client.get(
        reverse("deal_list"), {"amount_min": "100", "owner": admin_user.pk}
    ).content.decode()
    assert "Sofa" in listing and "Lamp" not in listing and "Secret" not in listing
    assert client.get(reverse("deal_list"), {"created_from": "yesterday"}).status_code == 400
    other_pipeline = PipelineFactory(company=other_company)
    assert client.get(reverse("deal_board"), {"pipeline": other_pipeline.pk}).status_code == 404


def test_every_deal_page_answers_404_for_another_companys_rows(client, admin_user, other_company):
    from crm.models import Client as CrmClient

    theirs = DealFactory(company=other_company)
    their_client = ClientFactory(company=other_company)
    client.force_login(admin_user)
    stage = theirs.pipeline.stages.last().pk
    for method, url, data in (
        ("get", reverse("deal_detail", args=[theirs.pk]), {}),
        (
            "post",
            reverse("deal_detail", args=[theirs.pk]),
            {"title": "x", "amount": "1", "currency": "EUR"},
        ),
        ("get", reverse("deal_card", args=[theirs.pk]), {}),
        ("post", reverse("deal_move", args=[theirs.pk]), {"stage": stage}),
        ("post", reverse("deal_close", args=[theirs.pk]), {"status": "won"}),
        ("get", reverse("deal_delete", args=[theirs.pk]), {}),
        ("post", reverse("deal_delete", args=[theirs.pk]), {}),
        ("get", reverse("pipeline_edit", args=[theirs.pipeline_id]), {}),
        (
            "post",
            reverse("pipeline_edit", args=[theirs.pipeline_id]),
            {"name": "x", "stage_name": ["a"]},
        ),
        ("get", reverse("pipeline_delete", args=[theirs.pipeline_id]), {}),
        (
            "post",
            reverse("pipeline_delete", args=[theirs.pipeline_id]),
            {"confirm_name": theirs.pipeline.name},
        ),
        ("get", reverse("client_deal_create", args=[their_client.pk]), {}),
        (
            "post",
            reverse("client_deal_create", args=[their_client.pk]),
            {"title": "x", "amount": "1", "currency": "EUR"},
        ),
        ("get", reverse("client_merge", args=[their_client.pk]), {}),
        ("get", reverse("client_delete", args=[their_client.pk]), {}),
        ("post", reverse("client_delete", args=[their_client.pk]), {}),
    ):
        assert getattr(client, method)(url, data).status_code == 404, url
    theirs.refresh_from_db()
    assert (
        theirs.stage.position == 0 and theirs.status == "open" and theirs.title.startswith("Deal")
    )
    assert CrmClient.objects.filter(pk=their_client.pk).exists()
    assert not Deal.objects.filter(company=admin_user.company).exists()
    # The list and the reports count nothing of theirs.
    assert theirs.title not in client.get(reverse("deal_list")).content.decode()
