"""Export before you delete (issue 19): a number's, account's or client's conversations with
their attachments as one archive (README, conversations.json, messages.csv, files/), built
in the background by a real Celery worker, progress published live, downloaded only by who
may (another company: 404; a non-admin for a channel: 403), failed in words when it cannot
finish (its subject gone, its worker killed), and deleted when it expires."""

import csv
import io
import json
import os
import tempfile
import tracemalloc
import uuid
import zipfile
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from exports import archive, services
from exports.models import ExportJob
from exports.tasks import build_export, sweep_exports
from messaging import realtime
from messaging.models import Attachment, Message

from .factories import (
    AttachmentFactory,
    ClientFactory,
    ConversationFactory,
    EmailAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)
from .processes import Worker, drop_queue, wait_for

CYRILLIC = "Здравствуйте! Счёт №42 — оплачен? Ґ, Є, Ї"


def _history(number, agent, *, conversations=3, extra_messages=0):
    """Conversations of `number`: Cyrillic text both ways, a stored file (bytes we compare),
    a file that was never stored; returns {attachment id: bytes}."""
    stored = {}
    for n in range(conversations):
        conversation = ConversationFactory(company=number.company, source=number)
        MessageFactory(conversation=conversation, body=f"{CYRILLIC} ({n})")
        reply = MessageFactory(
            conversation=conversation,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.SENT,
            author=agent,
            body='Да, спасибо; "quoted", comma',
        )
        content = os.urandom(200_000 + n)
        attachment = AttachmentFactory(
            message=reply, filename="счёт ../../etc/passwd.pdf", size=len(content)
        )
        attachment.file.save("invoice.pdf", ContentFile(content))
        stored[attachment.pk] = content
        AttachmentFactory(
            message=reply,
            filename="too-big.mp4",
            download_state=Attachment.DownloadState.FAILED,
            download_error="The file is 300.0 MB, over the 100 MB we store.",
        )
        Message.objects.bulk_create(
            Message(
                conversation=conversation,
                direction=Message.Direction.INBOUND,
                status=Message.Status.RECEIVED,
                body=f"Сообщение {m}",
            )
            for m in range(extra_messages)
        )
    return stored


def _read(job: ExportJob) -> zipfile.ZipFile:
    return zipfile.ZipFile(services.archive_path(job.file))


def _check_archive(job, number, stored):
    with _read(job) as zipped:
        names = set(zipped.namelist())
        assert {"README.txt", "conversations.json", "messages.csv"} <= names
        data = json.loads(zipped.read("conversations.json"))
        raw_csv = zipped.read("messages.csv")
        files = {name: zipped.read(name) for name in names if name.startswith("files/")}
        readme = zipped.read("README.txt").decode()
    expected = Message.objects.filter(
        conversation__platform="whatsapp", conversation__source_id=number.pk
    )
    assert data["subject"]["id"] == number.pk
    assert len(data["conversations"]) == 3
    messages = [m for c in data["conversations"] for m in c["messages"]]
    assert sorted(m["id"] for m in messages) == sorted(expected.values_list("pk", flat=True))
    assert {m["text"] for m in messages if m["direction"] == "in"} == {
        f"{CYRILLIC} ({n})" for n in range(3)
    }
    assert {m["author"] for m in messages if m["direction"] == "out"} == {"bob"}
    # The CSV: a BOM first (Excel), every message once, Cyrillic intact.
    assert raw_csv.startswith(b"\xef\xbb\xbf")
    lines = list(csv.DictReader(io.StringIO(raw_csv.decode("utf-8-sig"))))
    assert sorted(int(row["message_id"]) for row in lines) == sorted(
        expected.values_list("pk", flat=True)
    )
    assert {row["text"] for row in lines} >= {f"{CYRILLIC} (0)", 'Да, спасибо; "quoted", comma'}
    # Files: byte for byte, inside their conversation's folder (no path from the file name).
    exported = {
        a["id"]: a for m in messages for a in m["attachments"] if a["name"] != "too-big.mp4"
    }
    assert set(exported) == set(stored)
    for pk, content in stored.items():
        path = exported[pk]["path"]
        assert path.startswith("files/") and ".." not in path.split("/")
        assert files[path] == content
    missing = [a for m in messages for a in m["attachments"] if a["name"] == "too-big.mp4"]
    assert len(missing) == 3 and all(a["path"] is None and "300.0 MB" in a["note"] for a in missing)
    assert "conversations.json" in readme and "3 conversations" in readme


@pytest.fixture
def worker_queue(tmp_path, settings):
    """A real Celery worker on a private queue; exports are routed to it."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = f"exports-{uuid.uuid4().hex[:10]}"
    settings.EXPORT_QUEUE = queue
    worker = Worker("exports", queue, tmp_path, env={"EXPORT_PROGRESS_BATCH": "1"})
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.kill()
        drop_queue(client, queue)
        client.close()


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_a_worker_builds_the_archive_with_every_message_and_identical_files(worker_queue, api_for):
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    agent = UserFactory(company=number.company, username="bob")
    stored = _history(number, agent)
    ConversationFactory(company=number.company)  # another number's: not in the archive
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub()
    listener.subscribe(settings.REALTIME_CHANNEL)
    try:
        api = api_for(admin)
        started = api.post(
            "/api/v1/exports/", {"kind": "whatsapp", "object_id": number.pk}, format="json"
        )
        assert started.status_code == 202, started.content
        assert started.json()["state"] == "queued"
        assert started.json()["conversations_total"] == 3
        job_id = started.json()["id"]

        def finished():
            state = api.get(f"/api/v1/exports/{job_id}/").json()
            return state if state["state"] in ("done", "failed") else None

        state = wait_for(finished, timeout=120, interval=0.2)
        assert state["state"] == "done", (state, worker_queue.log())
        assert state["percent"] == 100 and state["conversations_done"] == 3
        assert state["messages_done"] == 6 and state["files_done"] == 3
        assert state["download_url"].endswith(f"/api/v1/exports/{job_id}/download/")
        progress = []
        while (message := listener.get_message(timeout=0.5)) is not None:
            if message["type"] != "message":
                continue
            for event in realtime.decode(message["data"]):
                if event["payload"]["event"] == "export.progress":
                    progress.append(event["payload"]["data"])
                    # The admins (who may read it), and nobody else of the company.
                    assert event["groups"] == [f"user.{admin.pk}"]
    finally:
        listener.close()
    # Published as it went (a batch of one conversation here), ending at 100 %.
    assert [p["percent"] for p in progress][-1] == 100
    assert {p["state"] for p in progress} >= {"queued", "running", "done"}
    assert any(p["state"] == "running" and 0 < p["done"] < 3 for p in progress)
    job = ExportJob.objects.get(pk=job_id)
    _check_archive(job, number, stored)
    download = api.get(
        f"/api/v1/exports/{job_id}/download/", HTTP_ACCEPT="application/octet-stream"
    )
    assert download.status_code == 200
    assert download["Content-Type"] == "application/octet-stream"
    assert "attachment" in download["Content-Disposition"]
    body = b"".join(download.streaming_content)
    assert len(body) == job.size == services.archive_path(job.file).stat().st_size


@pytest.mark.django_db
def test_the_build_streams_a_large_file_without_holding_it_in_memory():
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    message = MessageFactory(
        conversation=ConversationFactory(company=number.company, source=number)
    )
    attachment = AttachmentFactory(message=message, filename="video.mp4")
    block = os.urandom(1024 * 1024)
    with tempfile.TemporaryFile() as spool:
        for _ in range(40):
            spool.write(block)
        spool.seek(0)
        attachment.file.save("video.mp4", File(spool))
    job = services.start_export(admin, "whatsapp", number.pk)
    tracemalloc.start()
    try:
        assert build_export(job.pk) == "done"
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, f"peak {peak / 1048576:.1f} MB for a 40 MB file"
    job.refresh_from_db()
    with _read(job) as zipped:
        member = next(n for n in zipped.namelist() if n.startswith("files/"))
        assert zipped.getinfo(member).file_size == 40 * 1024 * 1024
        with zipped.open(member) as exported:
            assert exported.read(len(block)) == block


@pytest.mark.django_db
def test_another_company_gets_404_and_an_agent_403(api_for, client):
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    agent = UserFactory(company=number.company, username="bob")
    _history(number, agent, conversations=1)
    job = services.start_export(admin, "whatsapp", number.pk)
    build_export(job.pk)
    job.refresh_from_db()
    assert job.state == "done"
    stranger = UserFactory(role=Role.ADMIN)  # another company's admin
    for path in (f"/api/v1/exports/{job.pk}/", f"/api/v1/exports/{job.pk}/download/"):
        assert api_for(stranger).get(path).status_code == 404
        assert api_for(agent).get(path).status_code == 403
    assert api_for(stranger).get("/api/v1/exports/").json()["results"] == []
    assert api_for(agent).get("/api/v1/exports/").json()["results"] == []
    # Someone else's number is a 404 to start, too; an agent may not export a channel.
    refused = api_for(stranger).post(
        "/api/v1/exports/", {"kind": "whatsapp", "object_id": number.pk}, format="json"
    )
    assert refused.status_code == 404
    refused = api_for(agent).post(
        "/api/v1/exports/", {"kind": "whatsapp", "object_id": number.pk}, format="json"
    )
    assert refused.status_code == 403
    unknown = api_for(admin).post(
        "/api/v1/exports/", {"kind": "fax", "object_id": number.pk}, format="json"
    )
    assert unknown.status_code == 400 and "kind" in unknown.json()
    missing = api_for(admin).post("/api/v1/exports/", {"kind": "whatsapp"}, format="json")
    assert missing.status_code == 400 and "object_id" in missing.json()
    assert ExportJob.objects.count() == 1  # nothing half written
    # The pages: the same rules.
    client.force_login(stranger)
    assert client.get(reverse("export_download", args=[job.pk])).status_code == 404
    assert client.get(reverse("export_card", args=[job.pk])).status_code == 404
    client.force_login(agent)
    assert client.get(reverse("export_download", args=[job.pk])).status_code == 403
    started = client.post(
        reverse("export_start"), {"kind": "whatsapp", "object_id": number.pk, "next": "/"}
    )
    assert started.status_code == 403
    client.force_login(admin)
    download = client.get(reverse("export_download", args=[job.pk]))
    assert download.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).testzip() is None


@pytest.mark.django_db
def test_an_agent_exports_a_client_across_channels_and_only_they_and_admins_download_it(
    api_for,
):
    client_row = ClientFactory()
    company = client_row.company
    admin = UserFactory(company=company, role=Role.ADMIN)
    agent = UserFactory(company=company, username="bob")
    other_agent = UserFactory(company=company)
    supervisor = UserFactory(company=company, role=Role.SUPERVISOR)
    whatsapp = ConversationFactory(company=company, client=client_row)
    telegram = ConversationFactory(
        company=company, client=client_row, source=TelegramAccountFactory(company=company)
    )
    MessageFactory(conversation=whatsapp, body="Привет из WhatsApp")
    MessageFactory(conversation=telegram, body="Привет из Telegram")
    ConversationFactory(company=company)  # another client's
    started = api_for(agent).post(
        "/api/v1/exports/", {"kind": "client", "object_id": client_row.pk}, format="json"
    )
    assert started.status_code == 202
    job = ExportJob.objects.get(pk=started.json()["id"])
    # Another agent's export of the same client is their own job (it holds what they see).
    theirs = api_for(other_agent).post(
        "/api/v1/exports/", {"kind": "client", "object_id": client_row.pk}, format="json"
    )
    assert theirs.status_code == 202 and theirs.json()["id"] != job.pk
    assert build_export(job.pk) == "done"
    job.refresh_from_db()
    with _read(job) as zipped:
        data = json.loads(zipped.read("conversations.json"))
    assert {c["platform"] for c in data["conversations"]} == {"whatsapp", "telegram"}
    texts = {m["text"] for c in data["conversations"] for m in c["messages"]}
    assert texts == {"Привет из WhatsApp", "Привет из Telegram"}
    path = f"/api/v1/exports/{job.pk}/download/"
    assert api_for(agent).get(path).status_code == 200
    assert api_for(admin).get(path).status_code == 200
    assert api_for(other_agent).get(path).status_code == 403
    assert api_for(supervisor).get(path).status_code == 403
    refused = api_for(supervisor).post(
        "/api/v1/exports/", {"kind": "client", "object_id": client_row.pk}, format="json"
    )
    assert refused.status_code == 403


@pytest.mark.django_db
def test_a_subject_deleted_before_the_build_fails_in_words_on_the_delete_page(client):
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    job = services.start_export(admin, "whatsapp", number.pk)
    # What the build finds when the number went meanwhile (a second tab deleted it).
    ExportJob.objects.filter(pk=job.pk).update(object_id=number.pk + 10_000)
    assert build_export(job.pk) == "failed"
    job.refresh_from_db()
    assert job.state == "failed" and "was deleted before the export ran" in job.error
    assert not job.file
    ExportJob.objects.filter(pk=job.pk).update(object_id=number.pk)
    client.force_login(admin)
    page = client.get(reverse("number_delete", args=[number.pk])).content.decode()
    assert "The export failed." in page and "was deleted before the export ran" in page
    assert "Export again" in page
    # A second build of the same job does nothing (the claim).
    assert build_export(job.pk) is None


@pytest.mark.django_db
def test_a_build_whose_worker_stopped_beating_is_failed_and_its_part_file_removed(settings):
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    job = services.start_export(admin, "whatsapp", number.pk)
    assert archive.claim(job.pk)
    name = f"exports/{number.company_id}/{uuid.uuid4().hex}.zip"
    part = services.archive_path(name).with_name(services.archive_path(name).name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"PK half an archive")
    ExportJob.objects.filter(pk=job.pk).update(
        file=name, heartbeat_at=timezone.now() - timedelta(seconds=30)
    )
    settings.EXPORT_STALE_SECONDS = 60
    assert sweep_exports()["failed"] == 0  # beating recently enough
    settings.EXPORT_STALE_SECONDS = 10
    assert sweep_exports()["failed"] == 1
    job.refresh_from_db()
    assert job.state == "failed" and "worker was interrupted" in job.error
    assert not part.exists()
    # A fenced build: the job is no longer running, so its next progress write stops it.
    progress = archive.Progress(job, 1)
    with pytest.raises(archive.Abandoned):
        progress.flush()


@pytest.mark.timeout(300)
@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_build_leaves_no_job_running_for_ever(tmp_path, settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = f"exports-kill-{uuid.uuid4().hex[:10]}"
    settings.EXPORT_QUEUE = queue
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    agent = UserFactory(company=number.company, username="bob")
    _history(number, agent, conversations=3, extra_messages=5000)
    worker = Worker(
        "exports-kill",
        queue,
        tmp_path,
        env={"EXPORT_PROGRESS_BATCH": "1", "EXPORT_HEARTBEAT_SECONDS": "0"},
    )
    try:
        worker.wait_ready()
        job = services.start_export(admin, "whatsapp", number.pk)
        wait_for(
            lambda: (
                ExportJob.objects.filter(pk=job.pk, state="running", messages_done__gt=0)
                .exclude(file="")
                .exists()
            ),
            timeout=120,
            interval=0.01,
        )
        worker.kill()
    finally:
        worker.kill()
        drop_queue(client, queue)
        client.close()
    job.refresh_from_db()
    if job.state == "done":
        pytest.skip("the build finished before the kill landed (a very fast machine)")
    assert job.state == "running"
    part = services.archive_path(job.file).with_name(services.archive_path(job.file).name + ".part")
    assert part.exists()
    ExportJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert sweep_exports()["failed"] == 1
    job.refresh_from_db()
    assert job.state == "failed" and "Start it again" in job.error
    assert not part.exists()


@pytest.mark.django_db
def test_expired_archives_are_deleted_by_the_sweep(api_for):
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    job = services.start_export(admin, "whatsapp", number.pk)
    build_export(job.pk)
    job.refresh_from_db()
    path = services.archive_path(job.file)
    assert path.exists()
    assert job.expires_at - job.finished_at == timedelta(days=settings.EXPORT_KEEP_DAYS)
    assert sweep_exports()["expired"] == 0
    ExportJob.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep_exports()["expired"] == 1
    job.refresh_from_db()
    assert job.state == "expired" and not path.exists()
    gone = api_for(admin).get(f"/api/v1/exports/{job.pk}/download/")
    assert gone.status_code == 404 and "expired" in gone.json()["detail"]


@pytest.mark.django_db
def test_every_delete_page_offers_the_export_first(client):
    number = WhatsAppNumberFactory()
    company = number.company
    admin = UserFactory(company=company, role=Role.ADMIN)
    client.force_login(admin)
    subjects = [
        ("number_delete", number),
        ("telegram_delete", TelegramAccountFactory(company=company)),
        ("email_delete", EmailAccountFactory(company=company)),
        ("meta_page_delete", MessengerPageFactory(company=company)),
        ("client_delete", ClientFactory(company=company)),
    ]
    for url_name, subject in subjects:
        page = client.get(reverse(url_name, args=[subject.pk])).content.decode()
        offer = page.index('id="export-offer"')
        assert "Export first" in page, url_name
        assert offer < page.index('type="submit" class="btn btn-danger'), url_name
        assert f'name="object_id" value="{subject.pk}"' in page, url_name
    # Starting from the page comes back to it, showing the progress.
    url = reverse("number_delete", args=[number.pk])
    response = client.post(
        reverse("export_start"), {"kind": "whatsapp", "object_id": number.pk, "next": url}
    )
    assert response.status_code == 302 and response["Location"] == url + "#export-offer"
    page = client.get(url).content.decode()
    assert "Exporting:" in page and "<progress" in page
    # A foreign `next` is not followed.
    response = client.post(
        reverse("export_start"),
        {"kind": "whatsapp", "object_id": number.pk, "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("dashboard")
    assert ExportJob.objects.count() == 1  # the unfinished one is reused
