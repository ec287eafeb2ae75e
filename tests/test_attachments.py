"""Attachment downloads: members of the attachment's company only; a recorded-but-not-stored
file is a clear 404; in production the response hands the file to nginx."""

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from .factories import AttachmentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(company):
    attachment = AttachmentFactory(message__conversation__company=company, filename="note.pdf")
    attachment.file.save("note.pdf", ContentFile(b"%PDF-1.4 note"))
    return attachment


def test_a_member_downloads_it(client, agent_user, stored, settings):
    settings.SERVE_MEDIA_WITH_NGINX = False
    client.force_login(agent_user)
    response = client.get(reverse("attachment_download", args=[stored.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 note"
    assert response["Content-Disposition"] == 'attachment; filename="note.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_in_production_nginx_sends_the_file(client, agent_user, stored, settings):
    settings.SERVE_MEDIA_WITH_NGINX = True
    client.force_login(agent_user)
    response = client.get(reverse("attachment_download", args=[stored.pk]))
    assert response["X-Accel-Redirect"] == f"/protected-media/{stored.file.name}"
    assert response.content == b""


def test_another_company_and_a_file_not_stored_are_404(client, stored, other_company, agent_user):
    client.force_login(UserFactory(company=other_company))
    assert client.get(reverse("attachment_download", args=[stored.pk])).status_code == 404
    not_stored = AttachmentFactory(message__conversation__company=agent_user.company)
    client.force_login(agent_user)
    response = client.get(reverse("attachment_download", args=[not_stored.pk]))
    assert response.status_code == 404


def test_the_thread_links_stored_attachments(client, agent_user, stored):
    client.force_login(agent_user)
    page = client.get(reverse("conversation_detail", args=[stored.message.conversation_id]))
    assert reverse("attachment_download", args=[stored.pk]) in page.content.decode()


def test_an_attachment_whose_file_is_gone_is_404_not_500(client, agent_user, stored, settings):
    settings.SERVE_MEDIA_WITH_NGINX = False
    stored.file.storage.delete(stored.file.name)
    client.force_login(agent_user)
    response = client.get(reverse("attachment_download", args=[stored.pk]))
    assert response.status_code == 404
