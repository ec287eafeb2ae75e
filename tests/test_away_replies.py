"""Business hours and the away reply: outside a team's hours a new message gets the team's
away reply through the normal send path, at most once per conversation per day, never in
answer to an auto-reply or bulk mail, and two auto-responders cannot answer each other for
ever (ours says it is automatic: `Auto-Submitted: auto-replied`). Real PostgreSQL, Redis and
a real SMTP server (aiosmtpd) on loopback."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from channels_integrations.email.parsing import parse_mail
from messaging.models import Message
from messaging.services import Sender, ingest_inbound
from messaging.tasks import deliver_message
from teams import hours, services
from teams.models import AwayReply, Team

from .factories import EmailAccountFactory, UserFactory, WhatsAppNumberFactory
from .mailserver import SmtpSink

pytestmark = pytest.mark.django_db(transaction=True)

AWAY = "We are closed now; we answer from 9:00."
CLIENT = Sender(address="+4915100000042", name="Maria", phone="+4915100000042")


def _closed_team(company, **fields) -> Team:
    admin = UserFactory(company=company, role="admin")
    hours.forget_hours()
    return services.save_team(
        admin,
        name=f"Support {company.pk}",
        hours_enabled=True,
        timezone="Europe/Berlin",
        hours={},  # no working day: always closed
        away_message=AWAY,
        **fields,
    )


def _away_replies(**filters):
    return Message.objects.filter(
        direction=Message.Direction.OUTBOUND, metadata__away_reply=True, **filters
    )


def test_outside_hours_a_new_message_gets_one_away_reply_a_day(company):
    number = WhatsAppNumberFactory(company=company, team=_closed_team(company))
    first = ingest_inbound(number, "maria", "m1", CLIENT, "Hello?").conversation
    replies = _away_replies(conversation=first)
    assert [reply.body for reply in replies] == [AWAY]
    assert replies[0].status == Message.Status.QUEUED  # the normal outbox
    assert replies[0].metadata["auto_submitted"] == "auto-replied"
    ingest_inbound(number, "maria", "m2", CLIENT, "Anyone there?")
    ingest_inbound(number, "maria", "m3", CLIENT, "Hello??")
    assert _away_replies(conversation=first).count() == 1  # once per conversation per day
    other = ingest_inbound(
        number, "li", "m4", Sender(address="+4915100000043", phone="+4915100000043"), "Hi"
    ).conversation
    assert _away_replies(conversation=other).count() == 1
    # The next day (in the team's time zone) it may answer again.
    AwayReply.objects.filter(conversation=first).update(
        day=AwayReply.objects.get(conversation=first).day - timedelta(days=1)
    )
    ingest_inbound(number, "maria", "m5", CLIENT, "Good morning?")
    assert _away_replies(conversation=first).count() == 2


def test_no_away_reply_within_hours_or_without_team_hours(company):
    team = _closed_team(company)
    team.hours = {str(day): ["00:00", "23:59"] for day in range(7)}
    team.save()
    now = datetime.now(ZoneInfo("Europe/Berlin"))
    if now.hour == 23 and now.minute == 59:  # the one minute the test's hours leave out
        pytest.skip("run at 23:59 Berlin time")
    number = WhatsAppNumberFactory(company=company, team=team)
    ingest_inbound(number, "maria", "m1", CLIENT, "Hello?")
    unrouted = WhatsAppNumberFactory(company=company)
    ingest_inbound(unrouted, "maria", "m2", CLIENT, "Hello?")
    assert not _away_replies().exists()


@pytest.mark.parametrize(
    "metadata",
    [
        {"auto_submitted": "auto-replied"},
        {"auto_submitted": "auto-generated", "auto_reply": True},
        {"bulk": True, "flags": ["bulk"]},
        {"precedence": "list"},
    ],
)
def test_auto_replies_and_bulk_mail_get_no_away_reply(company, metadata):
    account = EmailAccountFactory(company=company, team=_closed_team(company))
    sender = Sender(address="bot@example.org", email="bot@example.org")
    ingest_inbound(account, "t1", "x1@example.org", sender, "Out of office", metadata=metadata)
    assert not _away_replies().exists()


def test_is_open_follows_the_weekly_schedule_in_the_team_time_zone():
    team = Team(timezone="America/New_York", hours={"0": ["09:00", "17:00"]})
    monday_10_ny = datetime(2026, 11, 30, 15, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in New York
    assert hours.is_open(team, monday_10_ny)
    assert not hours.is_open(team, monday_10_ny + timedelta(hours=8))  # 18:00
    assert not hours.is_open(team, monday_10_ny + timedelta(days=1))  # Tuesday: closed


def test_bad_hours_name_the_field(company):
    admin = UserFactory(company=company, role="admin")
    for fields, field in (
        ({"hours": {"0": ["18:00", "09:00"]}}, "hours"),
        ({"hours": {"9": ["09:00", "18:00"]}}, "hours"),
        ({"hours": {"0": ["nine", "five"]}}, "hours"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"hours_enabled": True, "away_message": ""}, "away_message"),
    ):
        with pytest.raises(ValidationError) as error:
            services.save_team(admin, name="X", **fields)
        assert field in error.value.message_dict
    assert not Team.objects.exists()


def test_two_auto_responders_cannot_loop(company, other_company):
    """Acme and Globex both answer with away replies. A Globex person writes to Acme; Acme's
    away reply (through real SMTP) lands in Globex's mailbox, which must not answer it; a
    naive responder answering Acme again gets nothing either (once a day)."""
    with SmtpSink() as smtp:
        smtp_fields = {
            "smtp_port": smtp.port,
            "smtp_security": "none",
            "username": smtp.login[0],
            "password": smtp.login[1],
        }
        acme = EmailAccountFactory(
            company=company, address="help@acme.test", team=_closed_team(company), **smtp_fields
        )
        globex = EmailAccountFactory(
            company=other_company,
            address="info@globex.test",
            team=_closed_team(other_company),
            **smtp_fields,
        )
        person = Sender(address="info@globex.test", email="info@globex.test")
        ingest_inbound(acme, "q1@globex.test", "q1@globex.test", person, "Price?", subject="Price")
        (reply,) = _away_replies(conversation__company=company)
        deliver_message(reply.pk)
        reply.refresh_from_db()
        assert reply.status == Message.Status.SENT
        (sent,) = smtp.messages
        assert sent["Auto-Submitted"] == "auto-replied"

        # Globex's mailbox receives it: parsed as an importer does, it is automatic.
        mail = parse_mail(sent.as_bytes(), attachment_limit=settings.ATTACHMENT_MAX_BYTES)
        ingest_inbound(
            globex,
            mail.message_id,
            mail.message_id,
            Sender(address=mail.from_address, email=mail.from_address),
            mail.text,
            subject=mail.subject,
            metadata=mail.metadata(),
        )
        assert Message.objects.filter(conversation__company=other_company).count() == 1
        assert not _away_replies(conversation__company=other_company).exists()

        # A responder that does not say it is automatic answers Acme: still one reply a day.
        ingest_inbound(acme, "q1@globex.test", "ooo@globex.test", person, "I am away too")
        assert _away_replies(conversation__company=company).count() == 1
        assert len(smtp.messages) == 1
