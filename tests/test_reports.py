"""Reports against a hand-computed fixture: every figure below was worked out by hand from the
rows the fixture writes (times in UTC, the period is November 2026), and each report is one
SQL statement whatever the data."""

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deals.models import Deal, StageChange
from messaging.models import Conversation, Message
from reports import selectors
from reports.views import REPORTS

from .factories import (
    ClientFactory,
    ConversationFactory,
    DealFactory,
    EmailAccountFactory,
    MessageFactory,
    PipelineFactory,
    TelegramAccountFactory,
    UserFactory,
)
from .processes import advisory_locks

pytestmark = pytest.mark.django_db
NOVEMBER = selectors.Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date())


def _at(month, day, hour, minute=0):
    from datetime import UTC

    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _conversation(company, created, *, assignee=None, source=None, closed=None, answered=None):
    kwargs = {"company": company, "assignee": assignee}
    if source is not None:
        kwargs["source"] = source
    conversation = ConversationFactory(**kwargs)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=created,
        closed_at=closed,
        first_response_at=answered,
        status="closed" if closed else "open",
    )
    return conversation


def _message(conversation, when, direction="in", author=None):
    message = MessageFactory(
        conversation=conversation,
        direction=direction,
        author=author,
        status="received" if direction == "in" else "sent",
    )
    Message.objects.filter(pk=message.pk).update(created_at=when)


@pytest.fixture
def november(admin_user, other_company):
    company = admin_user.company
    alice = admin_user
    bob = UserFactory(company=company, first_name="Bob", last_name="Agent")
    # c1 WhatsApp, Alice: asked 10:00, a bot at 10:01 (no author), Alice at 10:05 -> 300 s;
    # closed at 12:00 -> 7,200 s.
    c1 = _conversation(
        company, _at(11, 2, 10), assignee=alice, closed=_at(11, 2, 12), answered=_at(11, 2, 10, 5)
    )
    _message(c1, _at(11, 2, 10))
    _message(c1, _at(11, 2, 10, 1), "out")
    _message(c1, _at(11, 2, 10, 5), "out", alice)
    # c2 WhatsApp, Bob: 09:00 -> 09:20 = 1,200 s; closed a day later = 86,400 s.
    c2 = _conversation(
        company, _at(11, 3, 9), assignee=bob, closed=_at(11, 4, 9), answered=_at(11, 3, 9, 20)
    )
    _message(c2, _at(11, 3, 9))
    _message(c2, _at(11, 3, 9, 20), "out", bob)
    # c3 Telegram, Alice: 08:00 -> 09:00 = 3,600 s; still open.
    c3 = _conversation(
        company,
        _at(11, 5, 8),
        assignee=alice,
        source=TelegramAccountFactory(company=company),
        answered=_at(11, 5, 9),
    )
    _message(c3, _at(11, 5, 8))
    _message(c3, _at(11, 5, 9), "out", alice)
    # c4 email, nobody's, never answered.
    c4 = _conversation(company, _at(11, 6, 7), source=EmailAccountFactory(company=company))
    _message(c4, _at(11, 6, 7))
    # c5 from October: not in November's conversations, but Alice's reply on Nov 1 counts.
    c5 = _conversation(company, _at(10, 20, 7, 0), assignee=alice)
    _message(c5, _at(10, 20, 7))
    _message(c5, _at(11, 1, 12), "out", alice)
    # Another company's busy November counts nowhere.
    theirs = _conversation(other_company, _at(11, 2, 10), closed=_at(11, 2, 10, 1))
    _message(theirs, _at(11, 2, 10))
    _message(theirs, _at(11, 2, 10, 1), "out", UserFactory(company=other_company))

    # Deals: A -> B -> C won (1,000 EUR, Nov 10); A -> B lost; A open; an October deal that
    # went to D; won deals of 50 USD (Nov 12) and 500 EUR (Nov 20) in another pipeline.
    pipeline = PipelineFactory(company=company, stages=("A", "B", "C", "D"))
    a, b, c, d = pipeline.stages.order_by("position")
    client = ClientFactory(company=company)

    def deal(created, path, status="open", amount=0, currency="EUR", closed=None, on=pipeline):
        made = DealFactory(
            company=company,
            pipeline=on,
            stage=path[0],
            client=client,
            amount=amount,
            currency=currency,
        )
        for previous, stage in zip(path, path[1:], strict=False):
            StageChange.objects.create(
                deal=made, from_stage=previous, to_stage=stage, to_name=stage.name, to_status="open"
            )
        Deal.objects.filter(pk=made.pk).update(
            created_at=created, stage=path[-1], status=status, closed_at=closed
        )

    deal(_at(11, 3, 9), [a, b, c], "won", 1000, closed=_at(11, 10, 9))
    deal(_at(11, 4, 9), [a, b], "lost", closed=_at(11, 11, 9))
    deal(_at(11, 5, 9), [a])
    deal(_at(10, 5, 9), [a, d])
    other_pipeline = PipelineFactory(company=company)
    first = other_pipeline.stages.first()
    deal(_at(10, 1, 9), [first], "won", 50, "USD", closed=_at(11, 12, 9), on=other_pipeline)
    deal(_at(11, 1, 9), [first], "won", 500, "EUR", closed=_at(11, 20, 9), on=other_pipeline)
    return {
        "company": company,
        "alice": alice,
        "bob": bob,
        "pipeline": pipeline,
        "other": other_company,
    }


def test_response_and_resolution_times(november):
    figures = selectors.response_times(november["company"].pk, NOVEMBER)
    # First responses 300, 1,200, 3,600 s: median 1,200; p90 = 1,200 + 0.8 x 2,400 = 3,120.
    # Resolutions 7,200 and 86,400 s: median 46,800; p90 = 7,200 + 0.9 x 79,200 = 78,480.
    assert figures == {
        "conversations": 4,
        "answered": 3,
        "first_response_median": 1200.0,
        "first_response_p90": 3120.0,
        "resolved": 2,
        "resolution_median": 46800.0,
        "resolution_p90": 78480.0,
    }


def test_conversations_by_channel_and_agent(november):
    company_id = november["company"].pk
    assert [
        (r["platform"], r["conversations"])
        for r in selectors.conversations_by_channel(company_id, NOVEMBER)
    ] == [
        ("whatsapp", 2),
        ("email", 1),
        ("telegram", 1),
    ]
    rows = selectors.conversations_by_agent(company_id, NOVEMBER)
    # Alice: c1 (answered, closed), c3 (answered); Bob: c2 (answered, closed); c4 nobody's.
    assert [(r["agent_id"], r["conversations"], r["answered"], r["closed"]) for r in rows] == [
        (november["alice"].pk, 2, 2, 1),
        (november["bob"].pk, 1, 1, 1),
        (None, 1, 0, 0),
    ]
    assert rows[1]["agent"] == "Bob Agent"


def test_messages_per_day(november):
    days = selectors.messages_per_day(november["company"].pk, NOVEMBER)
    assert len(days) == 30 and days[0]["day"] == "2026-11-01" and days[-1]["day"] == "2026-11-30"
    busy = {d["day"]: (d["inbound"], d["outbound"]) for d in days if d["inbound"] or d["outbound"]}
    assert busy == {
        "2026-11-01": (0, 1),
        "2026-11-02": (1, 2),
        "2026-11-03": (1, 1),
        "2026-11-05": (1, 1),
        "2026-11-06": (1, 0),
    }


def test_finished_days_are_counted_once_and_today_live(november):
    from reports.models import MessageDay

    company = november["company"]
    selectors.messages_per_day(company.pk, NOVEMBER)
    assert MessageDay.objects.filter(company=company).count() == 30
    assert MessageDay.objects.get(company=company, day="2026-11-02").outbound == 2
    # Today is live: a message stored now shows at once, and today is never stored.
    now = timezone.localtime()  # one reading for the whole test: it may run just after midnight
    today = now.date()
    this_week = selectors.Period(today - timedelta(days=6), today)
    before = selectors.messages_per_day(company.pk, this_week, now=now)[-1]
    MessageFactory(conversation=ConversationFactory(company=company))
    after = selectors.messages_per_day(company.pk, this_week, now=now)[-1]
    assert after["day"] == today.isoformat() and after["inbound"] == before["inbound"] + 1
    assert not MessageDay.objects.filter(company=company, day=today).exists()
    # November's 30 days, plus this week's days after November that have been over for SETTLE
    # (each stored once; yesterday stays live in the first SETTLE after midnight).
    midnight = timezone.make_aware(datetime.combine(today, datetime.min.time()))
    extra = sum(
        1
        for n in range(1, 7)
        if today - timedelta(days=n) > NOVEMBER.end
        and midnight - timedelta(days=n - 1) + selectors.SETTLE <= now
    )
    assert MessageDay.objects.filter(company=company).count() == 30 + extra


def test_a_message_stamped_before_midnight_and_committed_after_is_not_lost(company):
    """A day is stored only once it has been over for SETTLE: until then it is counted live,
    so a message stamped at 23:59:59.9 whose transaction commits after midnight (or one from
    a server whose clock runs behind) still counts."""
    from reports.models import MessageDay

    today = timezone.localdate()
    midnight = timezone.make_aware(datetime.combine(today, datetime.min.time()))
    yesterday = today - timedelta(days=1)
    week = selectors.Period(today - timedelta(days=6), today)
    conversation = ConversationFactory(company=company)

    def stamped(at):
        message = MessageFactory(conversation=conversation)
        Message.objects.filter(pk=message.pk).update(created_at=at)

    def yesterdays(now):
        rows = selectors.messages_per_day(company.pk, week, now=now)
        return next(row["inbound"] for row in rows if row["day"] == yesterday.isoformat())

    stamped(midnight - timedelta(hours=3))
    assert yesterdays(midnight + timedelta(minutes=1)) == 1
    assert not MessageDay.objects.filter(company=company, day=yesterday).exists()
    stamped(midnight - timedelta(milliseconds=100))  # committed only now, after the report
    assert yesterdays(midnight + timedelta(minutes=2)) == 2  # still live: counted
    # Settled: stored once, with both, and read from the store from now on.
    assert yesterdays(midnight + selectors.SETTLE + timedelta(seconds=1)) == 2
    assert MessageDay.objects.get(company=company, day=yesterday).inbound == 2


def test_deal_funnel_and_won_amounts(november):
    company_id = november["company"].pk
    funnel = selectors.deal_funnel(company_id, NOVEMBER, november["pipeline"].pk)
    assert [(r["stage"], r["deals"], r["won"]) for r in funnel] == [
        ("A", 3, 1),
        ("B", 2, 1),
        ("C", 1, 1),
        ("D", 0, 0),
    ]
    assert [
        (r["period"], r["currency"], r["deals"], r["amount"])
        for r in selectors.won_amounts(company_id, NOVEMBER)
    ] == [
        ("2026-11-09", "EUR", 1, Decimal("1000.00")),
        ("2026-11-09", "USD", 1, Decimal("50.00")),
        ("2026-11-16", "EUR", 1, Decimal("500.00")),
    ]


def test_the_page_and_csv_take_a_constant_number_of_queries(client, november):
    client.force_login(november["alice"])
    params = {"from": "2026-11-01", "to": "2026-11-30", "pipeline": november["pipeline"].pk}
    with CaptureQueriesContext(connection) as small:
        page = client.get("/reports/", params)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="report-data"' in html and "chart.umd.min.js" in html
    # Twice the data, the same number of queries.
    _conversation(november["company"], _at(11, 7, 7))
    DealFactory.create_batch(3, company=november["company"], pipeline=november["pipeline"])
    with CaptureQueriesContext(connection) as large:
        client.get("/reports/", params)
    assert len(large.captured_queries) == len(small.captured_queries)

    response = client.get("/reports/by-agent.csv", params)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["Agent", "Conversations", "Answered", "Closed"]
    # (one more unassigned conversation since the fixture)
    assert rows[1][1:] == ["2", "2", "1"] and rows[2] == ["Unassigned", "2", "0", "0"]
    for name in REPORTS:
        assert client.get(f"/reports/{name}.csv", params).status_code == 200
    bad = client.get("/reports/by-agent.csv", {"from": "2026-13-01"})
    assert bad.status_code == 400 and b"from" in bad.content
    assert client.get("/reports/", {"from": "2026-11-30", "to": "2026-11-01"}).status_code == 400


def test_first_response_is_the_first_reply_an_agent_wrote_after_the_client(admin_user):
    from channels_integrations.models import Bot
    from messaging.services import send_message

    from .factories import WhatsAppNumberFactory

    number = WhatsAppNumberFactory(company=admin_user.company, provider="web")  # no reply window
    conversation = ConversationFactory(
        company=admin_user.company, source=number, last_inbound_at=None
    )
    send_message(conversation, admin_user, "We wrote first")  # the client never wrote yet
    conversation.refresh_from_db()
    assert conversation.first_response_at is None
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now())
    bot = Bot.objects.create(number=conversation.source, name="Helper", greeting="Hi")
    send_message(conversation, None, "A bot's answer", bot=bot)
    conversation.refresh_from_db()
    assert conversation.first_response_at is None
    first = send_message(conversation, admin_user, "An agent's answer")
    send_message(conversation, admin_user, "And another")
    conversation.refresh_from_db()
    assert conversation.first_response_at == first.created_at


def test_stored_conversation_days_follow_late_changes(november):
    """Finished days' conversation figures are stored (reports.ConversationDay) once asked
    for; a change that alters a stored day's figures (a late first reply, a close, a reopen,
    another assignee, a conversation added to or deleted from the day) deletes that day in
    every time zone, and the next report counts it again: the numbers stay exactly those
    computed from the conversations."""
    from reports.models import ConversationDay

    company = november["company"]
    times = selectors.response_times(company.pk, NOVEMBER)
    assert ConversationDay.objects.filter(company=company, tz="UTC").count() == 30
    nov6 = ConversationDay.objects.get(company=company, tz="UTC", day="2026-11-06")
    assert (nov6.conversations, nov6.answered, nov6.platforms) == (1, 0, {"email": 1})
    nov2 = ConversationDay.objects.get(company=company, tz="UTC", day="2026-11-02")
    assert (nov2.first_responses, nov2.resolutions) == ([300.0], [7200.0])
    with timezone.override("America/New_York"):
        selectors.response_times(company.pk, NOVEMBER)
    assert ConversationDay.objects.filter(company=company, tz="America/New_York").count() == 30

    # c4 (Nov 6, email, nobody's) answered late, on Nov 20, by Bob, and closed: 14 days later.
    c4 = Conversation.objects.get(company=company, created_at=_at(11, 6, 7))
    Conversation.objects.filter(pk=c4.pk).update(
        first_response_at=_at(11, 6, 7, 30),
        assignee=november["bob"],
        status="closed",
        closed_at=_at(11, 20, 7),
    )
    # That day is gone in both time zones (in New York, 07:00 UTC on Nov 6 is Nov 6 too);
    # the other days stay.
    assert not ConversationDay.objects.filter(company=company, day="2026-11-06").exists()
    assert ConversationDay.objects.filter(company=company, tz="UTC").count() == 29
    assert ConversationDay.objects.filter(company=company, tz="America/New_York").count() == 29
    after = selectors.response_times(company.pk, NOVEMBER)
    # First responses 300, 1,200, 1,800, 3,600 s: median 1,500; p90 = 1,800 + 0.7 x 1,800.
    # Resolutions 7,200, 86,400, 1,209,600 s: median 86,400; p90 = 86,400 + 0.8 x 1,123,200.
    assert after == {
        **times,
        "answered": 4,
        "first_response_median": 1500.0,
        "first_response_p90": 3060.0,
        "resolved": 3,
        "resolution_median": 86400.0,
        "resolution_p90": 984960.0,
    }
    rows = selectors.conversations_by_agent(company.pk, NOVEMBER)
    assert sorted(
        (r["agent_id"], r["conversations"], r["answered"], r["closed"]) for r in rows
    ) == [(november["alice"].pk, 2, 2, 1), (november["bob"].pk, 2, 2, 2)]
    # A reopen counts too (a closed conversation is no longer resolved), and moving between
    # open states does not touch the stored day.
    Conversation.objects.filter(pk=c4.pk).update(status="open")
    assert selectors.response_times(company.pk, NOVEMBER)["resolved"] == 2
    stored = ConversationDay.objects.get(company=company, tz="UTC", day="2026-11-06")
    Conversation.objects.filter(pk=c4.pk).update(status="pending", unread_count=3)
    assert ConversationDay.objects.filter(pk=stored.pk).exists()
    # A conversation added to a finished day (an import), or deleted from one.
    _conversation(company, _at(11, 6, 8), source=c4.source)
    channels = selectors.conversations_by_channel(company.pk, NOVEMBER)
    assert [(r["platform"], r["conversations"]) for r in channels] == [
        ("email", 2),
        ("whatsapp", 2),
        ("telegram", 1),
    ]
    Conversation.objects.filter(company=company, created_at__date="2026-11-06").delete()
    channels = selectors.conversations_by_channel(company.pk, NOVEMBER)
    assert [(r["platform"], r["conversations"]) for r in channels] == [
        ("whatsapp", 2),
        ("telegram", 1),
    ]
    assert selectors.response_times(company.pk, NOVEMBER)["conversations"] == 3
    # Another company's changes never touch this company's stored days.
    count = ConversationDay.objects.filter(company=company).count()
    Conversation.objects.filter(company=november["other"]).update(status="open", closed_at=None)
    assert ConversationDay.objects.filter(company=company).count() == count


def test_today_is_counted_live_and_never_stored(admin_user):
    from reports.models import ConversationDay

    company = admin_user.company
    today = timezone.localdate()
    week = selectors.Period(today - timedelta(days=6), today)
    assert selectors.response_times(company.pk, week)["conversations"] == 0
    conversation = ConversationFactory(company=company, assignee=admin_user)
    assert selectors.response_times(company.pk, week)["conversations"] == 1
    Conversation.objects.filter(pk=conversation.pk).update(
        first_response_at=conversation.created_at + timedelta(seconds=42)
    )
    figures = selectors.response_times(company.pk, week)
    assert (figures["answered"], figures["first_response_median"]) == (1, 42.0)
    assert [r["conversations"] for r in selectors.conversations_by_agent(company.pk, week)] == [1]
    assert not ConversationDay.objects.filter(company=company, day=today).exists()
    assert ConversationDay.objects.filter(company=company).count() == 6


def _until_someone_waits_for_the_reports_lock() -> None:
    """Polls pg_locks until another session waits for an advisory lock (no timing asserted:
    the test's own timeout bounds it)."""
    import time as clock

    while not advisory_locks(waiting=True):
        clock.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_a_change_during_a_fill_is_never_lost(admin_user):
    """Either order of a conversation change and a fill of its day ends with the day right:
    a fill waits for a change in progress (and sees it), and a change made while a fill runs
    deletes what the fill stored once both committed."""
    import threading

    from django.db import connections, transaction

    from reports.models import ConversationDay

    company = admin_user.company
    conversation = _conversation(company, _at(11, 6, 7))
    november = selectors.Period(NOVEMBER.start, NOVEMBER.end)

    # 1. A change in progress (its transaction open): the fill waits, then sees it.
    errors = []

    def fill():
        try:
            selectors.fill_conversation_days(company.pk, november)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(first_response_at=_at(11, 6, 8))
        filler = threading.Thread(target=fill)
        filler.start()
        _until_someone_waits_for_the_reports_lock()
    filler.join()
    assert not errors
    day = ConversationDay.objects.get(company=company, tz="UTC", day="2026-11-06")
    assert (day.answered, day.first_responses) == (1, [3600.0])

    # 2. A fill in progress (the lock held, the day stored, not committed): the change waits,
    # then deletes the stored day, so the next report counts it again.
    ConversationDay.objects.filter(company=company).delete()

    def change():
        try:
            Conversation.objects.filter(pk=conversation.pk).update(first_response_at=_at(11, 6, 9))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [(selectors.LOCK_NAMESPACE << 32) + company.pk]
        )
        cursor.execute(
            selectors.FILL_CONVERSATION_DAYS_SQL,
            selectors._conversation_params(company.pk, november, None),
        )
        changer = threading.Thread(target=change)
        changer.start()
        _until_someone_waits_for_the_reports_lock()
    changer.join()
    assert not errors
    assert not ConversationDay.objects.filter(company=company, day="2026-11-06").exists()
    figures = selectors.response_times(company.pk, november)
    assert (figures["answered"], figures["first_response_median"]) == (1, 7200.0)
