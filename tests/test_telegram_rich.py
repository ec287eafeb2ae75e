"""Telegram: shared locations, venues and contacts as typed content; a client's reaction
(Telethon's UpdateMessageReactions, a real TL object delivered at the client seam) is a
reaction on the message it targets, removed when they remove it; our reactions go out as
SendReactionRequest through the account's listener."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from telethon.tl import types

from messaging.models import Message, MessageReaction

from . import telegram_fakes as tg
from .processes import wait_for
from .test_telegram import (  # noqa: F401 (fixtures)
    account,
    connected,
    fake_telegram,
    listeners,
)

pytestmark = pytest.mark.django_db(transaction=True)

USER = 424242


def _reactions(message_id: int, emoji: str | None) -> types.UpdateMessageReactions:
    recent = []
    if emoji:
        recent = [
            types.MessagePeerReaction(
                peer_id=types.PeerUser(USER),
                date=datetime.now(tz=UTC),
                reaction=types.ReactionEmoji(emoji),
            )
        ]
    return types.UpdateMessageReactions(
        peer=types.PeerUser(USER),
        msg_id=message_id,
        reactions=types.MessageReactions(results=[], recent_reactions=recent),
    )


def _with(event, **attributes):
    for name, value in attributes.items():
        setattr(event.message, name, value)
    return event


def test_locations_and_contacts_are_typed_content(listeners, account):  # noqa: F811
    client = connected(listeners, account)
    place = types.MessageMediaVenue(
        geo=types.GeoPoint(long=13.405, lat=52.52, access_hash=0),
        title="Alexanderplatz",
        address="10178 Berlin",
        provider="",
        venue_id="",
        venue_type="",
    )
    client.deliver(
        "NewMessage", _with(tg.new_message(51, "", media=place), venue=place, geo=place.geo)
    )
    message = Message.objects.get(external_id="51")
    assert message.metadata["content"]["kind"] == "location"
    assert "Alexanderplatz" in message.body and "openstreetmap.org" in message.body
    assert not message.attachments.exists()

    card = types.MessageMediaContact(
        phone_number="4915199999999", first_name="Jo", last_name="Doe", vcard="", user_id=0
    )
    client.deliver("NewMessage", _with(tg.new_message(52, "", media=card), contact=card))
    message = Message.objects.get(external_id="52")
    assert message.metadata["content"]["contacts"] == [
        {"name": "Jo Doe", "phones": ["+4915199999999"], "emails": []}
    ]


def test_reactions_both_ways(listeners, account, api_for, agent_user, eager_celery):  # noqa: F811
    client = connected(listeners, account)
    client.deliver("NewMessage", tg.new_message(61, "Is the red one back?"))
    message = Message.objects.get(external_id="61")

    client.deliver("Raw", _reactions(61, "🔥"))
    assert MessageReaction.objects.get(message=message).emoji == "🔥"
    assert Message.objects.count() == 1
    message.conversation.refresh_from_db()
    assert message.conversation.unread_count == 1  # the message's own; the reaction adds none
    client.deliver("Raw", _reactions(61, None))
    assert not MessageReaction.objects.exists()
    client.deliver("Raw", SimpleNamespace(peer=types.PeerChannel(1), msg_id=61, reactions=None))
    assert not MessageReaction.objects.exists()

    url = f"/api/v1/conversations/{message.conversation_id}/messages/{message.pk}/reactions/"
    assert api_for(agent_user).post(url, {"emoji": "👍"}, format="json").status_code == 200
    [request] = wait_for(
        lambda: [call[1] for call in client.calls if call[0] == "SendReactionRequest"]
    )
    assert (request.peer, request.msg_id) == (USER, 61)
    assert [reaction.emoticon for reaction in request.reaction] == ["👍"]
