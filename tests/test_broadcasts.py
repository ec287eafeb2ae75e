"""Broadcasts on the real PostgreSQL and Redis: validation (nothing half-written), recipients,
scheduling through beat's dispatch, at-most-once sending through the real Cloud API channel, the
per-number rate limit, cancel, transient vs permanent errors, and `unknown` for sends whose
outcome was lost. The far end of the Cloud API (tests.far_end.GraphFake) is the only stand-in."""

import json
import os
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from channels_integrations.models import Broadcast, BroadcastRecipient
from channels_integrations.whatsapp import broadcasts
from channels_integrations.whatsapp.tasks import dispatch_broadcasts, send_broadcast_batch
from messaging import realtime

from .factories import ClientFactory, UserFactory, WhatsAppNumberFactory, wrote_today
from .far_end import graph_error, graph_unavailable
from .live import *  # noqa: F403  (fixtures of the browser test: daphne_server, browser)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def clean_redis():
    """This run's broadcast keys (rate windows, leases, attempts) start and end empty."""
    client = redis.Redis.from_url(settings.REDIS_URL)

    def wipe():
        keys = list(client.scan_iter(cache.make_key("broadcast:*"), count=1000))
        if keys:
            client.delete(*keys)

    wipe()
    yield
    wipe()
    client.close()


@pytest.fixture
def far_end(far_end, settings):
    settings.BROADCAST_RATE_PER_MINUTE = 1000
    return far_end


@pytest.fixture
def published(monkeypatch):
    """Events the broadcast services publish: (event, data, company_id)."""
    calls = []
    monkeypatch.setattr(
        broadcasts.events,
        "publish",
        lambda event, data, company_id=None, **_: calls.append((event, data, company_id)),
    )
    return calls


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(company=company)


def phones(count, start=0):
    return [f"+4915200{n:06d}" for n in range(start, start + count)]


def create(admin, number, recipients=(), **kwargs):
    kwargs.setdefault("text", "Our summer sale starts today!")
    wrote_today(number, recipients)
    return broadcasts.create_broadcast(admin, number=number, phones="\n".join(recipients), **kwargs)


def run_until_idle(broadcast, limit=50):
    """Run batches like the task chain does, until a batch asks to wait or stops."""
    results = []
    for _ in range(limit):
        result = broadcasts.run_broadcast_batch(broadcast.pk)
        results.append(result)
        if result.again_in != 0.0:
            break
    return results


def statuses(broadcast):
    return dict(
        BroadcastRecipient.objects.filter(broadcast=broadcast).values_list("phone", "status")
    )


# ---------------------------------------------------------------- create: validation


def test_text_must_be_present_and_at_most_4096_characters(admin_user, number):
    for text, fragment in (("", "Write"), ("   \n", "Write"), ("x" * 4097, "4096")):
        with pytest.raises(ValidationError) as error:
            create(admin_user, number, phones(1), text=text)
        assert fragment in error.value.message_dict["text"][0]
    assert Broadcast.objects.count() == 0 and BroadcastRecipient.objects.count() == 0
    create(admin_user, number, phones(1), text="x" * 4096)  # the limit itself is fine


def test_invalid_pasted_lines_are_listed_with_line_numbers_and_nothing_is_created(
    admin_user, number
):
    pasted = "\n".join(
        [
            "+4915123456789",  # 1 ok
            "call me maybe",  # 2
            "",  # 3 blank: skipped, not an error
            "+49 1",  # 4 too short
            "0049 151 23456780",  # 5 ok (00 = +)
            "15123456789",  # 6 no country code
            "+999 123456",  # 7 unknown country code
        ]
    )
    with pytest.raises(ValidationError) as error:
        broadcasts.create_broadcast(admin_user, number=number, text="Hi", phones=pasted)
    messages = error.value.message_dict["phones"]
    assert "4 lines" in messages[0] and "nothing was created" in messages[0]
    lines = messages[1:]
    assert [m.split(":")[0] for m in lines] == ["Line 2", "Line 4", "Line 6", "Line 7"]
    assert "call me maybe" in lines[0] and "not a phone number" in lines[0]
    assert "too short" in lines[1]
    assert "country code" in lines[2] and "unknown country code" in lines[3]
    assert Broadcast.objects.count() == 0 and BroadcastRecipient.objects.count() == 0

    _valid, invalid = broadcasts.parse_phone_lines(pasted)
    assert [(i.line, i.value) for i in invalid][0] == (2, "call me maybe")


def test_number_must_be_an_active_number_of_the_company(admin_user, number, other_company):
    foreign = WhatsAppNumberFactory(company=other_company)
    inactive = WhatsAppNumberFactory(company=number.company, is_active=False)
    for candidate, fragment in ((foreign, "your company"), (inactive, "deactivated")):
        with pytest.raises(ValidationError) as error:
            create(admin_user, candidate, phones(1))
        assert fragment in error.value.message_dict["number"][0]
    with pytest.raises(ValidationError) as error:
        create(admin_user, number, [], scheduled_at=timezone.now() - timedelta(minutes=1))
    assert "future" in error.value.message_dict["scheduled_at"][0]
    assert "recipients" not in error.value.message_dict  # reported once the rest is valid
    with pytest.raises(ValidationError) as error:
        create(admin_user, number, [])
    assert "at least one recipient" in error.value.message_dict["recipients"][0]
    assert Broadcast.objects.count() == 0


def test_recipients_from_clients_and_pasted_numbers_are_merged_by_phone(
    admin_user, number, other_company
):
    company = number.company
    ann = ClientFactory(company=company, phone="+4915111111111")
    ben = ClientFactory(company=company, phone="+4915122222222")
    nophone = ClientFactory(company=company, phone="", name="No Phone")
    stranger = ClientFactory(company=other_company, phone="+4915133333333")
    wrote_today(number, ["+4915144444444", "+4915133333333"])

    everyone = broadcasts.create_broadcast(
        admin_user,
        number=number,
        text="Hi all",
        all_clients=True,
        # Ben again (other spelling), a new number twice, and another company's client's phone.
        phones="+49 151 22222222\n+4915144444444\n+4915144444444\n+4915133333333",
    )
    rows = dict(
        BroadcastRecipient.objects.filter(broadcast=everyone).values_list("phone", "client_id")
    )
    assert rows == {
        "+4915111111111": ann.pk,
        "+4915122222222": ben.pk,
        "+4915144444444": None,
        "+4915133333333": None,  # not linked to another company's client
    }
    assert everyone.status == "sending" and everyone.started_at is not None

    chosen = broadcasts.create_broadcast(
        admin_user, number=number, text="Hi Ann", client_ids=[ann.pk]
    )
    assert list(chosen.recipients.values_list("client_id", flat=True)) == [ann.pk]

    with pytest.raises(ValidationError) as error:
        broadcasts.create_broadcast(
            admin_user, number=number, text="x", client_ids=[ann.pk, nophone.pk, stranger.pk]
        )
    messages = " ".join(error.value.message_dict["clients"])
    assert f"#{stranger.pk}" in messages and "No Phone" in messages
    assert Broadcast.objects.count() == 2


# ---------------------------------------------------------------- scheduling


def test_scheduled_broadcast_is_started_by_dispatch_when_due(
    admin_user, number, far_end, eager_celery
):
    broadcast = create(
        admin_user, number, phones(3), scheduled_at=timezone.now() + timedelta(hours=1)
    )
    assert broadcast.status == "scheduled" and broadcast.started_at is None

    dispatch_broadcasts()  # beat's task, called directly: not due yet
    broadcast.refresh_from_db()
    assert broadcast.status == "scheduled" and far_end.sent == []

    Broadcast.objects.filter(pk=broadcast.pk).update(
        scheduled_at=timezone.now() - timedelta(seconds=1)
    )
    dispatch_broadcasts()  # starts it and kicks a batch (eager here: runs inline)
    broadcast.refresh_from_db()
    assert broadcast.status == "completed" and broadcast.started_at and broadcast.finished_at
    assert sorted(m.to_address for m in far_end.sent) == phones(3)
    assert not broadcasts.lease_held(broadcast.pk)  # the eager chain let go of its lease


# ---------------------------------------------------------------- sending


def test_each_recipient_is_sent_exactly_once_and_progress_is_published(
    admin_user, number, far_end, published
):
    recipients = phones(25)
    broadcast = create(admin_user, number, recipients)
    published.clear()

    results = run_until_idle(broadcast)
    assert [r.sent for r in results] == [20, 5]  # small batches
    assert results[-1].again_in is None and results[-1].reason == "completed"
    assert sorted(m.to_address for m in far_end.sent) == recipients
    assert {m.body for m in far_end.sent} == {broadcast.text}
    # The number is a Cloud API number: its own phone-number id and token reached the Graph API.
    assert {m.phone_number_id for m in far_end.sent} == {number.cloud_phone_number_id}
    assert {m.token for m in far_end.sent} == {number.cloud_access_token}

    rows = BroadcastRecipient.objects.filter(broadcast=broadcast)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.provider_message_id.startswith("wamid.fake.") and r.sent_at for r in rows)
    broadcast.refresh_from_db()
    assert broadcast.status == "completed" and broadcast.finished_at

    # Running again (a duplicate task, a redelivery) sends nothing more.
    broadcasts.run_broadcast_batch(broadcast.pk)
    send_broadcast_batch.apply(args=(broadcast.pk,))
    assert len(far_end.sent) == 25

    progress = [data for event, data, _ in published if event == "broadcast.progress"]
    assert [p["sent"] for p in progress] == [20, 25, 25]  # two batches, then the final state
    assert set(progress[-1]) == {
        "id",
        "status",
        "status_label",  # the words pages show for it, in each reader's language
        "total",
        "sent",
        "delivered",
        "read",
        "failed",
        "pending",
        "unknown",
        "cancelled",
    }
    completed = [data for event, data, _ in published if event == "broadcast.completed"]
    assert completed == [
        {
            "id": broadcast.pk,
            "status": "completed",
            "status_label": "Completed",
            "total": 25,
            "sent": 25,
            "delivered": 0,
            "read": 0,
            "failed": 0,
            "pending": 0,
            "unknown": 0,
            "cancelled": 0,
        }
    ]
    assert {company for _, _, company in published} == {number.company_id}


def test_rate_limit_per_number_holds_back_the_rest_until_the_window_passes(
    admin_user, number, far_end, settings
):
    settings.BROADCAST_RATE_PER_MINUTE = 5
    broadcast = create(admin_user, number, phones(8))
    other = create(admin_user, WhatsAppNumberFactory(company=number.company), phones(2, 100))

    first = broadcasts.run_broadcast_batch(broadcast.pk)
    assert first.sent == 5 and first.reason == "rate limit"
    assert 0 < first.again_in <= broadcasts.MAX_REQUEUE_SECONDS  # a short re-queue, not an ETA
    assert broadcasts.acquire_send_slot(number.pk) > 55  # the window frees up in ~60 s
    again = broadcasts.run_broadcast_batch(broadcast.pk)
    assert again.sent == 0 and again.again_in > 0
    assert len(far_end.sent) == 5
    assert list(statuses(broadcast).values()).count("pending") == 3

    # Another number has its own budget.
    assert broadcasts.run_broadcast_batch(other.pk).sent == 2

    # The window passes (its log is dropped): the rest go out.
    redis.Redis.from_url(settings.REDIS_URL).delete(broadcasts.rate_limit_key(number.pk))
    last = broadcasts.run_broadcast_batch(broadcast.pk)
    assert last.sent == 3 and last.reason == "completed"
    assert sorted(
        m.to_address for m in far_end.sent if m.phone_number_id == number.cloud_phone_number_id
    ) == phones(8)


def test_cancel_stops_what_has_not_been_sent(admin_user, number, far_end, settings, published):
    settings.BROADCAST_RATE_PER_MINUTE = 3
    broadcast = create(admin_user, number, phones(10))
    assert broadcasts.run_broadcast_batch(broadcast.pk).sent == 3
    # One recipient is in flight on another worker right now (claimed, no outcome yet).
    in_flight = BroadcastRecipient.objects.filter(broadcast=broadcast, status="pending").first()
    BroadcastRecipient.objects.filter(pk=in_flight.pk).update(claimed_at=timezone.now())
    published.clear()

    broadcasts.cancel_broadcast(admin_user, broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == "cancelled" and broadcast.finished_at
    counts = broadcasts.progress(broadcast.pk)
    assert (counts["sent"], counts["cancelled"], counts["pending"]) == (3, 6, 1)
    assert published[-1][0] == "broadcast.progress" and published[-1][1]["status"] == "cancelled"

    redis.Redis.from_url(settings.REDIS_URL).delete(broadcasts.rate_limit_key(number.pk))
    result = broadcasts.run_broadcast_batch(broadcast.pk)
    assert result.sent == 0 and result.again_in is None
    assert len(far_end.sent) == 3
    with pytest.raises(ValidationError) as error:
        broadcasts.cancel_broadcast(admin_user, broadcast)
    assert "cancelled" in error.value.message_dict["status"][0]


def test_transient_errors_release_the_claim_and_permanent_ones_fail(
    admin_user, number, far_end, settings
):
    settings.SEND_MAX_ATTEMPTS = 2
    broadcast = create(admin_user, number, phones(3))
    first, second, third = BroadcastRecipient.objects.filter(broadcast=broadcast)

    far_end.script = [graph_error(131056)]  # pair rate limit: Meta asks for ~6 s
    result = broadcasts.run_broadcast_batch(broadcast.pk)
    assert (result.sent, result.retrying, result.again_in) == (0, 1, 6)  # paused, re-queued
    first.refresh_from_db()
    assert first.status == "pending" and first.claimed_at is None and first.send_attempts == 1
    assert first.error == "Retrying: WhatsApp rate limit (131056): sending again shortly."

    far_end.script = [
        graph_unavailable(),  # first: attempt 2 of 2 -> gives up
        graph_error(131026),  # second: not on WhatsApp
    ]
    results = run_until_idle(broadcast)
    assert results[-1].reason == "completed"
    for row in (first, second, third):
        row.refresh_from_db()
    assert first.status == "failed" and first.error.startswith("Gave up after 2 attempts")
    assert "(503)" in first.error
    assert second.status == "failed" and "may not be on WhatsApp" in second.error
    assert third.status == "sent"
    assert far_end.requests == 4  # first twice (within the cap), second and third once
    assert [m.to_address for m in far_end.sent] == [str(third.phone)]
    progress = broadcasts.progress(broadcast.pk)
    assert (progress["sent"], progress["failed"], progress["unknown"]) == (1, 2, 0)


def test_claims_without_outcome_become_unknown_and_are_never_retried(
    admin_user, number, far_end, settings, published
):
    settings.SEND_CLAIM_STALE_SECONDS = 60
    broadcast = create(admin_user, number, phones(5))
    rows = list(BroadcastRecipient.objects.filter(broadcast=broadcast))
    # A worker died mid-send 10 minutes ago; another worker is sending one right now.
    BroadcastRecipient.objects.filter(pk=rows[0].pk).update(
        claimed_at=timezone.now() - timedelta(minutes=10)
    )
    BroadcastRecipient.objects.filter(pk=rows[1].pk).update(claimed_at=timezone.now())

    assert broadcasts.mark_stale_claims_unknown() == [broadcast.pk]
    result = broadcasts.run_broadcast_batch(broadcast.pk)
    assert result.sent == 3
    assert result.again_in == broadcasts.IN_FLIGHT_RECHECK_SECONDS  # waits for the live claim
    assert statuses(broadcast)[str(rows[0].phone)] == "unknown"
    assert statuses(broadcast)[str(rows[1].phone)] == "pending"

    # The live worker died too: once its claim is older than the grace period, it is unknown.
    BroadcastRecipient.objects.filter(pk=rows[1].pk).update(
        claimed_at=timezone.now() - timedelta(seconds=61)
    )
    result = broadcasts.run_broadcast_batch(broadcast.pk)
    assert result.sent == 0 and result.reason == "completed"
    sent_to = {m.to_address for m in far_end.sent}
    assert str(rows[0].phone) not in sent_to and str(rows[1].phone) not in sent_to
    assert len(far_end.sent) == 3
    counts = broadcasts.progress(broadcast.pk)
    assert (counts["sent"], counts["unknown"], counts["status"]) == (3, 2, "completed")
    unknown = BroadcastRecipient.objects.get(pk=rows[0].pk)
    assert "not sent again automatically" in unknown.error


def test_a_late_outcome_replaces_unknown(admin_user, number):
    broadcast = create(admin_user, number, phones(1))
    claim = timezone.now() - timedelta(hours=1)
    BroadcastRecipient.objects.filter(broadcast=broadcast).update(claimed_at=claim)
    broadcasts.mark_stale_claims_unknown()
    recipient = BroadcastRecipient.objects.get(broadcast=broadcast)
    assert recipient.status == "unknown"
    # The slow worker's own claim comes back with an answer after all: it is recorded.
    assert broadcasts._record(recipient.pk, claim, status="sent", provider_message_id="w.1")
    assert not broadcasts._record(recipient.pk, timezone.now(), status="failed")  # not its claim
    recipient.refresh_from_db()
    assert recipient.status == "sent"


def test_a_deactivated_number_pauses_its_broadcasts(admin_user, number, far_end, eager_celery):
    sending = create(admin_user, number, phones(2))
    scheduled = create(
        admin_user, number, phones(2, 10), scheduled_at=timezone.now() + timedelta(minutes=5)
    )
    Broadcast.objects.filter(pk=scheduled.pk).update(scheduled_at=timezone.now())
    number.is_active = False
    number.save()

    assert broadcasts.run_broadcast_batch(sending.pk).reason == "number paused"
    dispatch_broadcasts()
    sending.refresh_from_db()
    scheduled.refresh_from_db()
    assert (sending.status, scheduled.status) == ("sending", "scheduled")  # kept, not failed
    assert far_end.sent == []

    number.is_active = True
    number.save()
    dispatch_broadcasts()  # resumes both (eager: inline)
    sending.refresh_from_db()
    scheduled.refresh_from_db()
    assert (sending.status, scheduled.status) == ("completed", "completed")
    assert len(far_end.sent) == 4


def test_the_task_chain_holds_one_lease_per_broadcast(admin_user, number, far_end, settings):
    settings.BROADCAST_RATE_PER_MINUTE = 1
    broadcast = create(admin_user, number, phones(3))
    assert broadcasts.take_lease(broadcast.pk, "chain-a")
    assert not broadcasts.take_lease(broadcast.pk, "chain-b")  # a second chain stays out
    assert broadcasts.broadcasts_to_kick() == []  # beat does not kick a running broadcast
    send_broadcast_batch.apply(args=(broadcast.pk,))  # a duplicate message: does nothing
    assert far_end.sent == []
    broadcasts.release_lease(broadcast.pk, "chain-b")  # not the holder: no effect
    assert broadcasts.lease_held(broadcast.pk)
    broadcasts.release_lease(broadcast.pk, "chain-a")
    assert broadcasts.broadcasts_to_kick() == [broadcast.pk]


# ---------------------------------------------------------------- API


def test_api_create_list_retrieve_cancel_and_recipients(
    api_for, admin_user, agent_user, number, other_company
):
    admin, agent = api_for(admin_user), api_for(agent_user)
    url = "/api/v1/whatsapp/broadcasts/"
    client = ClientFactory(company=number.company, phone="+4915111111111")
    wrote_today(number, ["+4915122222222", "+4915133333333"])
    payload = {
        "number": number.pk,
        "name": "Summer",
        "text": "Sale!",
        "clients": [client.pk],
        "phones": "+4915122222222\n+4915133333333",
        "scheduled_at": (timezone.now() + timedelta(hours=2)).isoformat(),
    }
    assert agent.post(url, payload, format="json").status_code == 403
    response = admin.post(url, payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "scheduled" and body["number_phone"] == str(number.phone)
    assert body["counts"] == {
        "total": 3,
        "sent": 0,
        "failed": 0,
        "pending": 3,
        "unknown": 0,
        "cancelled": 0,
    }
    broadcast_id = body["id"]

    listing = agent.get(url).json()
    assert [row["id"] for row in listing["results"]] == [broadcast_id]
    assert agent.get(f"{url}{broadcast_id}/").json()["counts"]["pending"] == 3

    page = agent.get(f"{url}{broadcast_id}/recipients/", {"page_size": 2}).json()
    assert [row["phone"] for row in page["results"]] == ["+4915111111111", "+4915122222222"]
    assert page["results"][0]["client"] == client.pk and page["next"]
    rest = agent.get(page["next"]).json()
    assert [row["phone"] for row in rest["results"]] == ["+4915133333333"]

    assert agent.post(f"{url}{broadcast_id}/cancel/").status_code == 403
    cancelled = admin.post(f"{url}{broadcast_id}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["counts"]["cancelled"] == 3
    again = admin.post(f"{url}{broadcast_id}/cancel/")
    assert again.status_code == 400 and "status" in again.json()
    filtered = agent.get(f"{url}{broadcast_id}/recipients/", {"status": "cancelled"}).json()
    assert len(filtered["results"]) == 3


def test_api_validation_errors_name_the_field_and_list_invalid_lines(
    admin_api, number, other_company
):
    url = "/api/v1/whatsapp/broadcasts/"
    response = admin_api.post(
        url, {"number": number.pk, "text": "Hi", "phones": "+4915122222222\nnope"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["phones"][1].startswith("Line 2: “nope”")
    response = admin_api.post(url, {"number": number.pk, "text": "x" * 4097, "all_clients": True})
    assert response.status_code == 400 and "4096" in response.json()["text"][0]
    foreign = WhatsAppNumberFactory(company=other_company)
    response = admin_api.post(url, {"number": foreign.pk, "text": "Hi", "phones": "+4915122222222"})
    assert response.status_code == 400 and "number" in response.json()
    assert Broadcast.objects.count() == 0


# ---------------------------------------------------------------- pages


def test_pages_create_shows_invalid_lines_and_then_creates(client, admin_user, number):
    wrote_today(number, ["+4915122222222", "+4915133333333"])
    client.force_login(admin_user)
    page = client.get(reverse("broadcast_create"))
    assert page.status_code == 200 and str(number.phone) in page.content.decode()
    form = {
        "number": number.pk,
        "text": "Hello!",
        "audience": "none",
        "phones": "+4915122222222\nabc\n+49 1",
        "when": "at",  # without a time: another error at the same time
    }
    response = client.post(reverse("broadcast_create"), form)
    content = response.content.decode()
    assert response.status_code == 200
    assert "2 lines are not a valid phone number" in content
    assert "<td>2</td>" in content and "abc" in content and "not a phone number" in content
    assert "<td>3</td>" in content and "too short" in content
    assert "Pick the date and time" in content
    assert Broadcast.objects.count() == 0
    form["when"] = "now"

    form["phones"] = "+4915122222222\n+4915133333333"
    response = client.post(reverse("broadcast_create"), form)
    broadcast = Broadcast.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("broadcast_detail", args=[broadcast.pk])
    detail = client.get(response["Location"]).content.decode()
    assert f'data-broadcast-progress="{broadcast.pk}"' in detail
    assert "+4915133333333" in detail and "Cancel broadcast" in detail
    assert "js/broadcasts.js" in detail

    assert "Hello!" in client.get(reverse("broadcasts")).content.decode()
    response = client.post(reverse("broadcast_cancel", args=[broadcast.pk]))
    assert response.status_code == 302
    broadcast.refresh_from_db()
    assert broadcast.status == "cancelled"


def test_pages_agents_read_but_do_not_create_or_cancel(client, company, number, admin_user):
    agent = UserFactory(company=company, role=Role.AGENT)
    broadcast = create(admin_user, number, phones(1))
    client.force_login(agent)
    assert client.get(reverse("broadcasts")).status_code == 200
    detail = client.get(reverse("broadcast_detail", args=[broadcast.pk]))
    assert detail.status_code == 200 and "Cancel broadcast" not in detail.content.decode()
    assert client.get(reverse("broadcast_create")).status_code == 403
    assert client.post(reverse("broadcast_cancel", args=[broadcast.pk])).status_code == 403
    other_number = WhatsAppNumberFactory()
    other_admin = UserFactory(company=other_number.company, role=Role.ADMIN)
    foreign = create(other_admin, other_number, phones(1))
    assert client.get(reverse("broadcast_detail", args=[foreign.pk])).status_code == 404


def test_pages_need_a_login(client, admin_user, number):
    broadcast = create(admin_user, number, phones(1))
    for url in (
        reverse("broadcasts"),
        reverse("broadcast_create"),
        reverse("broadcast_detail", args=[broadcast.pk]),
        reverse("broadcast_cancel", args=[broadcast.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), (
            url
        )


# ---------------------------------------------------------------- live page (real browser)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_detail_page_shows_progress_live_and_hides_cancel_when_done(
    daphne_server, browser, far_end, settings, monkeypatch
):
    from playwright.sync_api import expect

    monkeypatch.setattr(broadcasts, "kick", lambda broadcast_id: None)  # the test sends itself
    settings.BROADCAST_RATE_PER_MINUTE = 3
    number = WhatsAppNumberFactory()
    admin = UserFactory(company=number.company, role=Role.ADMIN)
    broadcast = create(admin, number, phones(5))

    page = log_in(browser, daphne_server, admin)  # noqa: F405
    page.goto(daphne_server.url + reverse("broadcast_detail", args=[broadcast.pk]))
    wait_live(page)  # noqa: F405
    page.evaluate("window.__noReload = true")
    progress = page.locator(f'[data-broadcast-progress="{broadcast.pk}"]')
    expect(progress.locator('[data-count="pending"]')).to_have_text("5")

    assert broadcasts.run_broadcast_batch(broadcast.pk).sent == 3  # then the rate limit
    expect(progress.locator('[data-count="sent"]')).to_have_text("3")
    expect(progress.locator('[data-count="pending"]')).to_have_text("2")
    expect(progress.locator('[data-seg="sent"]')).to_have_attribute("style", "width: 60%;")
    expect(page.locator("[data-cancel-form]")).to_be_visible()

    redis.Redis.from_url(settings.REDIS_URL).delete(broadcasts.rate_limit_key(number.pk))
    assert broadcasts.run_broadcast_batch(broadcast.pk).reason == "completed"
    expect(progress.locator('[data-count="sent"]')).to_have_text("5")
    expect(page.locator('[data-field="status"]')).to_have_text("Completed")
    expect(page.locator("[data-cancel-form]")).to_have_count(0)
    expect(page.locator("[data-completed-note]")).to_be_visible()
    expect(progress.locator('[data-seg="sent"]')).to_have_attribute("style", "width: 100%;")
    # The server-rendered parts follow: the recipients table and the finish time.
    expect(page.locator("#bcast-recipients .bcast-rstatus-sent")).to_have_count(5)
    expect(page.locator('#bcast-details [data-field="finished_at"]')).not_to_have_text("—")
    page.wait_for_timeout(400)  # the bar's width transition, for the screenshot
    assert page.evaluate("window.__noReload === true")
    if os.environ.get("SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["SCREENSHOTS"], "broadcast_detail.png"))


# ---------------------------------------------------------------- status webhooks, at scale


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
def test_status_webhooks_publish_progress_at_most_once_a_second_and_the_last_counts_all(
    company, tmp_path
):
    """Meta sends three status webhooks per recipient, by the thousand per second, and one
    progress count reads every recipient (~0.1 s at 100,000). A worker draining the webhook
    inbox publishes `broadcast.progress` at most once a second per broadcast — by a task at
    the end of the window, whatever the number of batches — and that publish counts every
    change before it."""
    from crm.celery import app as celery_app
    from webhook_inbox.models import Delivery

    from .processes import Worker, drop_queue, wait_for
    from .test_whatsapp_cloud import PHONE_NUMBER_ID, _inbound_payload

    number = WhatsAppNumberFactory(
        company=company, provider="cloud", cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token", cloud_app_secret="secret",
    )  # fmt: skip
    broadcast = Broadcast.objects.create(
        company=company, number=number, text="Our spring offer", status="sending"
    )
    recipients = phones(30)
    BroadcastRecipient.objects.bulk_create(
        BroadcastRecipient(
            broadcast=broadcast, phone=phone, status="sent", provider_message_id=f"wamid.b.{n}"
        )
        for n, phone in enumerate(recipients)
    )
    for status in ("delivered", "read"):  # one status per delivery, as Meta sends them
        for n, phone in enumerate(recipients):
            report = {"id": f"wamid.b.{n}", "status": status, "timestamp": "1763900100",
                      "recipient_id": phone[1:]}  # fmt: skip
            Delivery.objects.create(
                company=company, source="whatsapp_cloud", source_id=number.pk,
                body=json.dumps(_inbound_payload(statuses=[report])).encode(),
            )  # fmt: skip
    client = redis.Redis.from_url(settings.REDIS_URL)
    queue = f"progress-{uuid.uuid4().hex[:10]}"
    # Six batches of ten, each its own commit, well within a second.
    worker = Worker("progress", queue, tmp_path, env={"WEBHOOK_INBOX_BATCH": "10"})
    listener = client.pubsub()
    listener.subscribe(settings.REALTIME_CHANNEL)
    progress = []
    try:
        worker.wait_ready()
        with celery_app.connection_for_write() as broker:
            celery_app.send_task("webhook_inbox.tasks.drain_inbox", queue=queue, connection=broker)
        wait_for(lambda: not Delivery.objects.exists(), timeout=60)
        deadline = time.monotonic() + 3  # the window's publish, and nothing after it
        while time.monotonic() < deadline:
            message = listener.get_message(timeout=0.2)
            if message and message["type"] == "message":
                for event in realtime.decode(message["data"]):
                    if event["payload"]["event"] == "broadcast.progress":
                        progress.append(event["payload"]["data"])
    finally:
        listener.close()
        worker.kill()
        drop_queue(client, queue)
        client.close()
    assert BroadcastRecipient.objects.filter(broadcast=broadcast, status="read").count() == 30
    assert len(progress) == 1, (progress, worker.log())
    assert progress[0]["id"] == broadcast.pk
    assert (progress[0]["delivered"], progress[0]["read"], progress[0]["total"]) == (30, 30, 30)


@pytest.mark.django_db
def test_without_redis_status_webhooks_publish_progress_at_once(
    number, published, monkeypatch, django_capture_on_commit_callbacks
):
    """The once-a-second window lives in Redis: with Redis down, every change publishes its
    progress at once, as before the window (nothing is left unpublished)."""
    from .processes import free_port

    broadcast = Broadcast.objects.create(
        company=number.company, number=number, text="Offer", status="sending"
    )
    BroadcastRecipient.objects.create(
        broadcast=broadcast, phone="+4915200000001", status="sent", provider_message_id="wamid.x"
    )
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    monkeypatch.setattr(broadcasts, "_redis", lambda: dead)
    with django_capture_on_commit_callbacks(execute=True):
        assert broadcasts.record_recipient_statuses(number.pk, [("wamid.x", "read", "")]) == 1
    [(event, data, company_id)] = published
    assert event == "broadcast.progress" and data["read"] == 1 and company_id == number.company_id


@pytest.mark.django_db
def test_with_the_broker_down_each_status_change_publishes_its_progress_at_once(
    number, published, monkeypatch, django_capture_on_commit_callbacks
):
    """No task can close the second's window: each change publishes at once, the next one
    within the same second too (nothing is left unpublished)."""
    from kombu.exceptions import OperationalError

    class BrokerDown:
        def apply_async(self, *args, **kwargs):
            raise OperationalError("Error 111 connecting to the broker. Connection refused.")

    broadcast = Broadcast.objects.create(
        company=number.company, number=number, text="Offer", status="sending"
    )
    for n in range(2):
        BroadcastRecipient.objects.create(
            broadcast=broadcast, phone=f"+491520000000{n}", status="sent",
            provider_message_id=f"wamid.{n}",
        )  # fmt: skip
    monkeypatch.setattr(broadcasts, "task", lambda name: BrokerDown())
    for n in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            broadcasts.record_recipient_statuses(number.pk, [(f"wamid.{n}", "read", "")])
    assert [data["read"] for event, data, _company in published] == [1, 2]
