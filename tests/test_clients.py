"""Clients: the page lists every conversation and deal; merging two keeps everything (their
conversations, deals, identities, and a record of the merge); CSV import validates every line
first and writes nothing when one is wrong; CSV export; delete with a preview."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from crm.client_services import ImportErrors, import_clients_csv, merge_clients
from crm.models import Client, ClientMerge
from deals.models import Deal, StageChange
from messaging.models import Conversation
from messaging.services import Sender, ingest_inbound

from .factories import (
    ClientFactory,
    ConversationFactory,
    DealFactory,
    EmailAccountFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

pytestmark = pytest.mark.django_db


def test_the_client_page_lists_every_conversation_and_deal(client, admin_user, other_company):
    maria = ClientFactory(company=admin_user.company, name="Maria")
    on_whatsapp = ConversationFactory(company=admin_user.company, client=maria)
    on_telegram = ConversationFactory(
        company=admin_user.company,
        client=maria,
        source=TelegramAccountFactory(company=admin_user.company),
    )
    deal = DealFactory(company=admin_user.company, client=maria, title="Kitchen")
    ConversationFactory(company=admin_user.company)  # someone else's
    client.force_login(admin_user)
    html = client.get(reverse("client_detail", args=[maria.pk])).content.decode()
    assert (
        f'data-conversation="{on_whatsapp.pk}"' in html
        and f'data-conversation="{on_telegram.pk}"' in html
    )
    assert html.count("data-conversation=") == 2
    assert f'data-deal="{deal.pk}"' in html and "Kitchen" in html


def test_merge_keeps_everything(admin_user, django_capture_on_commit_callbacks):
    company = admin_user.company
    keep = ClientFactory(
        company=company, name="Maria Lopez", phone="+4915100000001", email="", notes="VIP"
    )
    dup = ClientFactory(
        company=company,
        name="M. Lopez",
        phone="+4915100000002",
        email="maria@example.com",
        telegram_user_id=4242,
        telegram_username="marial",
        notes="Prefers mornings",
    )
    number = WhatsAppNumberFactory(company=company)
    mailbox = EmailAccountFactory(company=company)
    kept_conversation = ConversationFactory(company=company, client=keep, source=number)
    moved = [
        ConversationFactory(company=company, client=dup, source=number),
        ConversationFactory(company=company, client=dup, source=mailbox),
    ]
    kept_deal = DealFactory(company=company, client=keep)
    moved_deal = DealFactory(company=company, client=dup, title="Wardrobe")
    with django_capture_on_commit_callbacks(execute=True):
        record = merge_clients(admin_user, keep, dup)

    assert not Client.objects.filter(pk=dup.pk).exists()
    keep.refresh_from_db()
    # Kept identities stay; the duplicate's fill the gaps; the other phone is in the notes.
    assert (str(keep.phone), keep.email, keep.telegram_user_id, keep.telegram_username) == (
        "+4915100000001",
        "maria@example.com",
        4242,
        "marial",
    )
    assert keep.name == "Maria Lopez"
    assert (
        "VIP" in keep.notes and "Prefers mornings" in keep.notes and "+4915100000002" in keep.notes
    )
    assert set(Conversation.objects.filter(client=keep).values_list("pk", flat=True)) == {
        kept_conversation.pk,
        *(c.pk for c in moved),
    }
    assert set(Deal.objects.filter(client=keep).values_list("pk", flat=True)) == {
        kept_deal.pk,
        moved_deal.pk,
    }
    assert StageChange.objects.filter(deal=moved_deal).count() == 1  # its history came along
    assert (record.conversations_moved, record.deals_moved, record.merged_client_id) == (
        2,
        1,
        dup.pk,
    )
    assert record.snapshot["phone"] == "+4915100000002" and record.actor == admin_user
    assert ClientMerge.objects.get(kept=keep) == record

    # A new message from the duplicate's email lands on the kept client.
    sender = Sender(address="maria@example.com", name="Maria", email="maria@example.com")
    result = ingest_inbound(mailbox, "new-thread", "m-1", sender, "Hello again")
    assert result.conversation.client_id == keep.pk


def test_merge_refuses_the_same_client_and_another_companys(client, admin_user, other_company):
    mine = ClientFactory(company=admin_user.company)
    theirs = ClientFactory(company=other_company)
    client.force_login(admin_user)
    assert (
        client.post(reverse("client_merge", args=[mine.pk]), {"other": theirs.pk}).status_code
        == 404
    )
    assert (
        client.post(reverse("client_merge", args=[theirs.pk]), {"other": mine.pk}).status_code
        == 404
    )
    with pytest.raises(Exception):
        merge_clients(admin_user, mine, mine)
    assert Client.objects.filter(pk__in=[mine.pk, theirs.pk]).count() == 2


def test_merge_page(client, admin_user):
    keep = ClientFactory(company=admin_user.company, name="Maria Lopez")
    dup = ClientFactory(company=admin_user.company, name="Maria L.")
    ConversationFactory(company=admin_user.company, client=dup)
    client.force_login(admin_user)
    page = client.get(reverse("client_merge", args=[keep.pk]), {"q": "Maria"}).content.decode()
    assert f'data-client="{dup.pk}"' in page and f'data-client="{keep.pk}"' not in page
    response = client.post(reverse("client_merge", args=[keep.pk]), {"other": dup.pk})
    assert response.status_code == 302
    detail = client.get(reverse("client_detail", args=[keep.pk])).content.decode()
    assert 'id="client-merges"' in detail and f"#{dup.pk}" in detail


CSV_BAD = (
    "name,phone,email,telegram_user_id\n"
    "Anna,+4915100000101,anna@example.com,\n"  # line 2: fine
    "Ben,not a phone,ben@example.com,\n"  # line 3: phone
    "Cleo,+4915100000103,cleo-at-example,\n"  # line 4: email
    "Dan,+4915100000104,,abc\n"  # line 5: telegram_user_id
    "Eve,+4915100000101,,\n"  # line 6: same phone as line 2
    "Fay,+4915100000900,,\n"  # line 7: an existing client's phone
)


def test_csv_import_lists_every_bad_line_and_writes_nothing(admin_user):
    ClientFactory(company=admin_user.company, phone="+4915100000900")
    before = Client.objects.count()
    with pytest.raises(ImportErrors) as refused:
        import_clients_csv(admin_user, CSV_BAD.encode())
    assert [(line, field) for line, field, _message in refused.value.lines] == [
        (3, "phone"),
        (4, "email"),
        (5, "telegram_user_id"),
        (6, "phone"),
        (7, "phone"),
    ]
    assert "line 2" in refused.value.lines[3][2].lower() or "2" in refused.value.lines[3][2]
    assert Client.objects.count() == before


def test_csv_import_and_export_round_trip(client, admin_user, other_company):
    ClientFactory(company=other_company, phone="+4915100000101")  # not a clash: another company
    client.force_login(admin_user)
    good = '\ufeffName,Phone,Email,Telegram_username,Notes\nAnna,+49 151 00000101,Anna@Example.com,anna,"Likes, commas"\nBen,,ben@example.com,,\n'
    upload = SimpleUploadedFile("clients.csv", good.encode(), content_type="text/csv")
    response = client.post(reverse("clients_import"), {"file": upload})
    assert response.status_code == 302
    anna = Client.objects.get(company=admin_user.company, name="Anna")
    assert (str(anna.phone), anna.email, anna.notes) == (
        "+4915100000101",
        "anna@example.com",
        "Likes, commas",
    )

    bad = SimpleUploadedFile("clients.csv", CSV_BAD.encode(), content_type="text/csv")
    page = client.post(reverse("clients_import"), {"file": bad})
    assert page.status_code == 400
    html = page.content.decode()
    assert 'data-line="3" data-field="phone"' in html and 'data-line="6" data-field="phone"' in html
    assert 'data-line="2"' in html  # line 7's clash is now with line 2's number imported above
    weird = SimpleUploadedFile("c.csv", b"name,shoe_size\nAnna,42\n", content_type="text/csv")
    assert "shoe_size" in client.post(reverse("clients_import"), {"file": weird}).content.decode()
    binary = SimpleUploadedFile("c.csv", b"\xff\xfe\x00bad", content_type="text/csv")
    assert client.post(reverse("clients_import"), {"file": binary}).status_code == 400

    export = client.get(reverse("clients_export"))
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert sorted(r["name"] for r in rows) == ["Anna", "Ben"]
    assert next(r for r in rows if r["name"] == "Anna")["notes"] == "Likes, commas"


def test_delete_shows_the_counts_then_deletes_in_one_statement(client, admin_user):
    maria = ClientFactory(company=admin_user.company)
    conversation = ConversationFactory(company=admin_user.company, client=maria)
    DealFactory.create_batch(2, company=admin_user.company, client=maria)
    client.force_login(admin_user)
    page = client.get(reverse("client_delete", args=[maria.pk])).content.decode()
    assert 'data-count="deals">2<' in page and 'data-count="conversations">1<' in page
    assert client.post(reverse("client_delete", args=[maria.pk])).status_code == 302
    assert not Client.objects.filter(pk=maria.pk).exists()
    assert not Deal.objects.filter(client_id=maria.pk).exists()
    conversation.refresh_from_db()
    assert conversation.client_id is None


# ---------------------------------------------------------------- REST API


def test_api_merge_keeps_everything_and_refuses_what_it_must(
    admin_api, api_for, admin_user, other_company
):
    company = admin_user.company
    keep = ClientFactory(company=company, name="Maria", phone="+4915100000201")
    dup = ClientFactory(company=company, name="", email="maria@example.com")
    conversation = ConversationFactory(company=company, client=dup)
    deal = DealFactory(company=company, client=dup, title="Kitchen")
    history = StageChange.objects.create(deal=deal, to_stage=deal.stage, to_status="open")
    theirs = ClientFactory(company=other_company, name="Theirs")
    their_conversation = ConversationFactory(company=other_company, client=theirs)

    # Another company's client, either way round, is a 404 like a missing one; nothing moves.
    url = f"/api/v1/clients/{keep.pk}/merge/"
    assert admin_api.post(url, {"other": theirs.pk}).status_code == 404
    assert (
        admin_api.post(f"/api/v1/clients/{theirs.pk}/merge/", {"other": dup.pk}).status_code == 404
    )
    assert admin_api.post(url, {"other": 10**9}).status_code == 404
    # The same client twice, or no `other`: a 400 naming the field.
    same = admin_api.post(url, {"other": keep.pk})
    assert same.status_code == 400 and "other" in same.json()
    missing = admin_api.post(url, {})
    assert missing.status_code == 400 and "other" in missing.json()
    assert admin_api.post(url, {"other": "x"}).status_code == 400
    assert Client.objects.filter(pk=dup.pk).exists() and not ClientMerge.objects.exists()
    their_conversation.refresh_from_db()
    assert their_conversation.client_id == theirs.pk

    response = admin_api.post(url, {"other": dup.pk})
    assert response.status_code == 200
    body = response.json()
    assert (body["kept"], body["merged_client_id"]) == (keep.pk, dup.pk)
    assert (body["conversations_moved"], body["deals_moved"]) == (1, 1)
    assert body["snapshot"]["email"] == "maria@example.com" and body["actor"] == admin_user.pk
    assert body["client"]["email"] == "maria@example.com" and body["client"]["name"] == "Maria"
    assert not Client.objects.filter(pk=dup.pk).exists()
    conversation.refresh_from_db()
    deal.refresh_from_db()
    assert conversation.client_id == keep.pk and deal.client_id == keep.pk
    assert StageChange.objects.filter(pk=history.pk, deal=deal).exists()
    # Supervisors read but do not merge.
    supervisor = UserFactory(company=company, role=Role.SUPERVISOR)
    other = ClientFactory(company=company)
    assert api_for(supervisor).post(url, {"other": other.pk}).status_code == 403


def test_api_csv_import_lists_bad_lines_and_writes_nothing(admin_api, admin_user, other_company):
    ClientFactory(company=admin_user.company, phone="+4915100000900")
    ClientFactory(company=other_company, phone="+4915100000102")  # another company: no clash
    before = Client.objects.count()

    def post(data: bytes, name="clients.csv"):
        upload = SimpleUploadedFile(name, data, content_type="text/csv")
        return admin_api.post("/api/v1/clients/import/", {"file": upload}, format="multipart")

    bad = post(CSV_BAD.encode())
    assert bad.status_code == 400
    assert [(e["line"], e["field"]) for e in bad.json()["lines"]] == [
        (3, "phone"),
        (4, "email"),
        (5, "telegram_user_id"),
        (6, "phone"),
        (7, "phone"),
    ]
    assert bad.json()["file"][0].startswith("line 3, phone:")
    assert Client.objects.count() == before
    unknown = post(b"name,shoe_size\nAnna,42\n")
    assert unknown.status_code == 400 and unknown.json()["lines"][0]["field"] == "header"
    assert "shoe_size" in unknown.json()["lines"][0]["message"]
    binary = post(b"\xff\xfe\x00bad")
    assert binary.status_code == 400 and binary.json()["lines"][0]["field"] == "file"
    no_file = admin_api.post("/api/v1/clients/import/", {}, format="multipart")
    assert no_file.status_code == 400 and "file" in no_file.json()
    as_json = admin_api.post("/api/v1/clients/import/", {"file": "name\nAnna\n"}, format="json")
    assert as_json.status_code == 415
    assert Client.objects.count() == before

    good = post(b"name,phone,email\nAnna,+4915100000101,anna@example.com\nBen,+4915100000102,\n")
    assert good.status_code == 201 and good.json() == {"imported": 2}
    assert set(
        Client.objects.filter(company=admin_user.company).values_list("name", flat=True)
    ) >= {"Anna", "Ben"}
