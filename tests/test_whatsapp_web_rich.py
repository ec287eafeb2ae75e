"""QR-linked WhatsApp (neonize): what a customer does besides writing text — reactions, edits,
deletions, locations, contact cards, button and list replies — read from neonize's real protobuf events
(web.message_from_event) and applied through the session's callbacks; our reactions go out
through the session holder's command path (the adapter seam records them)."""

import time

import pytest
from django.utils import timezone
from neonize.events import MessageEv, ReceiptEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message as WaMessage

from channels_integrations.whatsapp.web import (
    WebInboundMessage,
    message_from_event,
    receipt_from_event,
)
from messaging.models import Message, MessageReaction

from .factories import ConversationFactory, MessageFactory, WhatsAppNumberFactory
from .processes import wait_for
from .test_whatsapp_sessions import (  # noqa: F401 (fixtures)
    Status,
    _start,
    fast_sessions,
    runners,
    web_number,
)
from .whatsapp_fakes import FakeWebAdapter

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "4915112345678"


def _event(content: WaMessage, message_id="3EB0NEW") -> MessageEv:
    event = MessageEv()
    event.Message.CopyFrom(content)
    event.Info.ID = message_id
    event.Info.Pushname = "Kerry"
    event.Info.Timestamp = 1763900000
    event.Info.MessageSource.Sender.User = CUSTOMER
    event.Info.MessageSource.Sender.Server = "s.whatsapp.net"
    return event


def test_a_reaction_and_its_removal_are_actions_on_the_target():
    content = WaMessage()
    content.reactionMessage.key.ID = "3EB0TARGET"
    content.reactionMessage.text = "👍"
    parsed = message_from_event(_event(content))
    assert (parsed.action, parsed.target, parsed.emoji) == ("reaction", "3EB0TARGET", "👍")
    content.reactionMessage.text = ""
    assert message_from_event(_event(content)).emoji == ""


def test_edits_both_shapes_and_revokes():
    edit = WaMessage()
    edit.protocolMessage.type = 14  # MESSAGE_EDIT
    edit.protocolMessage.key.ID = "3EB0TARGET"
    edit.protocolMessage.editedMessage.conversation = "Sunday, not Saturday"
    parsed = message_from_event(_event(edit))
    assert (parsed.action, parsed.target, parsed.body) == (
        "edit",
        "3EB0TARGET",
        "Sunday, not Saturday",
    )
    wrapped = WaMessage()
    wrapped.editedMessage.message.CopyFrom(edit)
    assert message_from_event(_event(wrapped)).action == "edit"
    revoke = WaMessage()
    revoke.protocolMessage.type = 0  # REVOKE
    revoke.protocolMessage.key.ID = "3EB0TARGET"
    assert message_from_event(_event(revoke)).action == "revoke"
    other = WaMessage()
    other.protocolMessage.type = 3  # an ephemeral setting: nothing for the inbox
    other.protocolMessage.key.ID = "x"
    assert message_from_event(_event(other)) is None


def test_location_and_contact_cards_are_typed_content():
    place = WaMessage()
    place.locationMessage.degreesLatitude = 52.52
    place.locationMessage.degreesLongitude = 13.405
    place.locationMessage.name = "Alexanderplatz"
    parsed = message_from_event(_event(place))
    assert parsed.content["kind"] == "location" and "Alexanderplatz" in parsed.body
    assert parsed.raw["locationMessage"]["name"] == "Alexanderplatz"
    assert "openstreetmap.org" in parsed.body
    card = WaMessage()
    card.contactMessage.displayName = "Chandler Bing"
    card.contactMessage.vcard = (
        "BEGIN:VCARD\nVERSION:3.0\nFN:Chandler Bing\n"
        "TEL;type=CELL;waid=15555555555:+1 555-555-5555\nEMAIL:chandler@example.com\nEND:VCARD"
    )
    parsed = message_from_event(_event(card))
    assert parsed.content == {
        "kind": "contacts",
        "contacts": [
            {
                "name": "Chandler Bing",
                "phones": ["+1 555-555-5555"],
                "emails": ["chandler@example.com"],
            }
        ],
    }


def test_button_and_list_replies_are_the_chosen_option():
    """What a client taps on our buttons or list rows (every shape a QR-linked number sees)
    is shown as the chosen option with our id of it, not as an empty or unknown message."""
    button = WaMessage()
    button.buttonsResponseMessage.selectedButtonID = "confirm-42"
    button.buttonsResponseMessage.selectedDisplayText = "Yes, deliver on Friday"
    parsed = message_from_event(_event(button))
    assert parsed.content == {
        "kind": "choice",
        "title": "Yes, deliver on Friday",
        "description": "",
        "payload": "confirm-42",
    }
    assert parsed.body == "Yes, deliver on Friday"
    template = WaMessage()
    template.templateButtonReplyMessage.selectedID = "stop"
    template.templateButtonReplyMessage.selectedDisplayText = "Stop promotions"
    assert message_from_event(_event(template)).content["payload"] == "stop"
    listed = WaMessage()
    listed.listResponseMessage.title = "Kyiv, Khreshchatyk 1"
    listed.listResponseMessage.description = "Open 9-21"
    listed.listResponseMessage.singleSelectReply.selectedRowID = "shop-7"
    parsed = message_from_event(_event(listed))
    assert (parsed.content["title"], parsed.content["description"]) == (
        "Kyiv, Khreshchatyk 1",
        "Open 9-21",
    )
    assert parsed.content["payload"] == "shop-7"
    flow = WaMessage()
    flow.interactiveResponseMessage.body.text = "Sent"
    flow.interactiveResponseMessage.nativeFlowResponseMessage.name = "address_message"
    assert message_from_event(_event(flow)).content["payload"] == "address_message"


def test_through_the_session_reactions_edits_and_deletions_change_the_original(
    runners,  # noqa: F811 (the sessions tests' fixture)
    web_number,  # noqa: F811
    admin_api,
    api_for,
    agent_user,
    eager_celery,
):
    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    now = timezone.now()
    common = {"phone": CUSTOMER, "name": "Kerry", "timestamp": now}
    adapter.callbacks.on_message(WebInboundMessage(wamid="3EB0A", body="Saturday?", **common))
    original = Message.objects.get(external_id="3EB0A")

    adapter.callbacks.on_message(
        WebInboundMessage(
            wamid="3EB0R", body="", action="reaction", target="3EB0A", emoji="❤️", **common
        )
    )
    assert MessageReaction.objects.get(message=original).emoji == "❤️"
    adapter.callbacks.on_message(
        WebInboundMessage(wamid="3EB0E", body="Sunday?", action="edit", target="3EB0A", **common)
    )
    original.refresh_from_db()
    assert original.body == "Sunday?" and original.metadata["edits"][0]["body"] == "Saturday?"
    assert Message.objects.count() == 1

    # An agent reacts: the holder sends it through the adapter.
    url = f"/api/v1/conversations/{original.conversation_id}/messages/{original.pk}/reactions/"
    response = api_for(agent_user).post(url, {"emoji": "👍"}, format="json")
    assert response.status_code == 200, response.content
    wait_for(lambda: adapter.reactions)
    assert adapter.reactions == [(f"+{CUSTOMER}", "3EB0A", "👍")]

    adapter.callbacks.on_message(
        WebInboundMessage(wamid="3EB0D", body="", action="revoke", target="3EB0A", **common)
    )
    original.refresh_from_db()
    assert original.metadata["deleted"] and Message.objects.count() == 1


def _receipt(kind: int, *wamids: str, from_me: bool = False, group: bool = False) -> ReceiptEv:
    event = ReceiptEv()
    event.Type = kind  # neonize Receipt.ReceiptType
    event.MessageIDs.extend(wamids)
    event.MessageSource.Sender.User = CUSTOMER
    event.MessageSource.IsFromMe = from_me
    event.MessageSource.IsGroup = group
    return event


def test_the_customers_receipts_move_our_sends_and_broadcast_recipients_forward(
    runners,  # noqa: F811 (the sessions tests' fixture)
    web_number,  # noqa: F811
    admin_api,
):
    """A QR number's sends stopped at `sent` for good (receipts were dropped): delivered and
    read now arrive from the customer's phone, for inbox replies and broadcasts alike, and
    only forward; our own devices' reads and group receipts change nothing."""
    from channels_integrations.models import Broadcast, BroadcastRecipient

    _start(admin_api, web_number, wait_for_status=Status.CONNECTED)
    adapter = FakeWebAdapter.instances[-1]
    conversation = ConversationFactory(
        company=web_number.company, source=web_number, external_thread_id=CUSTOMER
    )
    reply = MessageFactory(
        conversation=conversation, direction="out", status="sent", external_id="3EB0REPLY"
    )

    def sent_in_a_broadcast(number):
        return BroadcastRecipient.objects.create(
            broadcast=Broadcast.objects.create(
                company=number.company, number=number, text="Sale", status="completed"
            ),
            phone=f"+{CUSTOMER}",
            status="sent",
            provider_message_id="3EB0BROADCAST",
        )

    recipient = sent_in_a_broadcast(web_number)
    # The same id sent from another number is that number's, never touched from this one.
    elsewhere = sent_in_a_broadcast(
        WhatsAppNumberFactory(company=web_number.company, provider="web")
    )

    def states():
        reply.refresh_from_db()
        recipient.refresh_from_db()
        return reply.status, recipient.status

    for ignored in (
        _receipt(4, "3EB0REPLY", from_me=True),  # our own phone read it: not the customer
        _receipt(4, "3EB0REPLY", group=True),
        _receipt(5, "3EB0REPLY"),  # READ_SELF
        _receipt(3, "3EB0REPLY"),  # RETRY
    ):
        assert receipt_from_event(ignored) is None

    adapter.callbacks.on_receipt(receipt_from_event(_receipt(1, "3EB0REPLY", "3EB0BROADCAST")))
    assert wait_for(lambda: states() == ("delivered", "delivered"))
    adapter.callbacks.on_receipt(receipt_from_event(_receipt(6, "3EB0BROADCAST")))  # played
    adapter.callbacks.on_receipt(receipt_from_event(_receipt(4, "3EB0REPLY")))
    assert wait_for(lambda: states() == ("read", "read"))
    adapter.callbacks.on_receipt(receipt_from_event(_receipt(1, "3EB0REPLY", "3EB0BROADCAST")))
    time.sleep(0.2)
    assert states() == ("read", "read")  # a late "delivered" never steps back
    elsewhere.refresh_from_db()
    assert elsewhere.status == "sent"
