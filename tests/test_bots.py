"""Bots on WhatsApp numbers: services (validation, ordering), the REST API, the pages, and the
engine that answers inbound messages through the real pipeline (ingest_inbound → signal after
commit → Celery task → send_message → send task → provider). The provider is the only stand-in,
the far end of the Cloud API (tests.far_end) at the wire."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from channels_integrations.models import Bot, BotRule
from channels_integrations.whatsapp import bots as services
from channels_integrations.whatsapp.bots import answer_inbound
from channels_integrations.whatsapp.tasks import answer_with_bots
from messaging.models import Message
from messaging.services import Sender, ingest_inbound

from .factories import (
    BotFactory,
    BotRuleFactory,
    ConversationFactory,
    MessageFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
)

SENDER = Sender(address="+4915199999999", name="Maria", phone="+4915199999999")


@pytest.fixture
def number(company):
    return WhatsAppNumberFactory(company=company)


@pytest.fixture
def bot(number):
    return BotFactory(number=number, name="Front desk")


@pytest.fixture
def receive(django_capture_on_commit_callbacks, far_end, eager_celery):
    """receive(number, body, ...) -> the stored inbound message, after every on-commit effect
    (the bots' task and the send task, eagerly) has run."""
    counter = iter(range(1, 10_000))

    def ingest(number, body, *, thread="+4915199999999", metadata=None):
        with django_capture_on_commit_callbacks(execute=True):
            result = ingest_inbound(
                number, thread, f"wamid.in.{next(counter)}", SENDER, body, metadata=metadata
            )
        return result.message

    return ingest


def bot_replies(**filters):
    return Message.objects.filter(bot__isnull=False, **filters).order_by("id")


# ---------------------------------------------------------------- services


@pytest.mark.django_db
def test_create_update_delete_bot(admin_user, number):
    bot = services.create_bot(admin_user, number, name="  Sales  ", greeting=" Hi! ")
    assert (bot.name, bot.greeting, bot.is_active) == ("Sales", "Hi!", True)
    services.update_bot(admin_user, bot, is_active=False, greeting="")
    bot.refresh_from_db()
    assert not bot.is_active and bot.greeting == ""
    BotRuleFactory(bot=bot)
    services.delete_bot(admin_user, bot)
    assert not Bot.objects.exists() and not BotRule.objects.exists()


@pytest.mark.django_db
def test_bot_on_another_companys_number_is_a_field_error(admin_user, other_company):
    foreign = WhatsAppNumberFactory(company=other_company)
    with pytest.raises(ValidationError) as error:
        services.create_bot(admin_user, foreign, name="Sneaky")
    assert "number" in error.value.message_dict
    assert not Bot.objects.exists()


@pytest.mark.django_db
def test_bot_validation_names_the_fields(admin_user, number):
    with pytest.raises(ValidationError) as error:
        services.create_bot(admin_user, number, name="  ", greeting="x" * 4097)
    assert set(error.value.message_dict) == {"name", "greeting"}
    assert not Bot.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"match_type": "regex", "trigger": "price(", "reply_text": "x"}, "trigger", "regular"),
        ({"match_type": "keyword", "trigger": "   ", "reply_text": "x"}, "trigger", "keyword"),
        ({"match_type": "keyword", "trigger": "hi", "reply_text": "  "}, "reply_text", "required"),
        (
            {"match_type": "keyword", "trigger": "hi", "reply_text": "x" * 4097},
            "reply_text",
            "4096",
        ),
        ({"match_type": "fuzzy", "trigger": "hi", "reply_text": "x"}, "match_type", "valid choice"),
    ],
)
def test_rule_validation_names_the_field(admin_user, bot, fields, field, fragment):
    with pytest.raises(ValidationError) as error:
        services.create_rule(admin_user, bot, **fields)
    assert fragment in " ".join(error.value.message_dict[field])
    assert not BotRule.objects.exists()


@pytest.mark.django_db
def test_rules_are_appended_and_reordered(admin_user, bot):
    rules = [
        services.create_rule(admin_user, bot, trigger=f"w{i}", reply_text="r") for i in range(3)
    ]
    assert [rule.position for rule in rules] == [0, 1, 2]
    services.reorder_rules(admin_user, bot, [rules[2].pk, rules[0].pk, rules[1].pk])
    assert list(bot.rules.values_list("pk", flat=True)) == [rules[2].pk, rules[0].pk, rules[1].pk]
    services.move_rule(admin_user, rules[1], -1)  # last → middle
    assert list(bot.rules.values_list("pk", flat=True)) == [rules[2].pk, rules[1].pk, rules[0].pk]
    services.move_rule(admin_user, rules[2], -1)  # already first: stays
    services.move_rule(admin_user, rules[0], +1)  # already last: stays
    assert list(bot.rules.values_list("pk", flat=True)) == [rules[2].pk, rules[1].pk, rules[0].pk]
    for wrong in ([rules[0].pk], [rules[0].pk, rules[0].pk, rules[1].pk], [1, 2, 3]):
        with pytest.raises(ValidationError) as error:
            services.reorder_rules(admin_user, bot, wrong)
        assert "order" in error.value.message_dict


@pytest.mark.parametrize(
    ("match_type", "trigger", "text", "matches"),
    [
        ("keyword", "prices", "what are your prices?", True),
        ("keyword", "prices", "WHAT ARE YOUR PRICES", True),
        ("keyword", "price", "what are your prices?", False),  # whole words only
        ("keyword", "price", "priceless", False),
        ("keyword", "opening hours", "your Opening   hours, please", True),  # phrase
        ("keyword", "opening hours", "opening late, hours?", False),
        ("keyword", "c++", "do you teach C++?", True),
        ("keyword", "straße", "Welche STRASSE? die Straße!", True),
        ("keyword", "über", "überall", False),  # Unicode word edges
        ("regex", r"order\s*#?\d{4,}", "Where is ORDER #12345?", True),
        ("regex", r"^hi\b", "oh hi", False),
        ("regex", r"(?-i:URGENT)", "urgent", False),
    ],
)
def test_matching(match_type, trigger, text, matches):
    rule = BotRule(match_type=match_type, trigger=trigger, reply_text="r", position=0)
    assert services.rule_matches(rule, text) is matches


def test_automated_messages_are_recognised():
    assert services.is_automated({"auto_submitted": "auto-replied"})
    assert services.is_automated({"auto_submitted": True})
    assert services.is_automated({"bulk": True})
    assert services.is_automated({"precedence": "Bulk"})
    assert not services.is_automated({"auto_submitted": "no"})  # RFC 3834: a person wrote it
    assert not services.is_automated({})
    assert not services.is_automated(None)


# ---------------------------------------------------------------- engine


@pytest.mark.django_db
def test_keyword_rule_answers_through_the_pipeline(bot, number, receive, far_end):
    rule = BotRuleFactory(bot=bot, trigger="prices", reply_text="From 9 € a month.")
    inbound = receive(number, "what are your prices?")

    reply = bot_replies().get()
    assert reply.bot == bot and reply.author is None
    assert reply.direction == Message.Direction.OUTBOUND
    assert reply.conversation_id == inbound.conversation_id
    assert reply.body == "From 9 € a month." and reply.sender_name == "Front desk"
    assert reply.metadata == {"in_reply_to": inbound.pk, "bot_rule": rule.pk}
    # Through the normal outbound pipeline: queued → handed to the provider → sent.
    assert reply.status == Message.Status.SENT and reply.external_id.startswith("wamid.fake.")
    assert [sent.body for sent in far_end.sent] == ["From 9 € a month."]
    assert far_end.sent[0].to_address == "+4915199999999"
    assert Message.objects.count() == 2


@pytest.mark.django_db
def test_no_match_no_greeting_no_reply(bot, number, receive, far_end):
    BotRuleFactory(bot=bot, trigger="prices")
    receive(number, "hello there")
    assert not bot_replies().exists() and far_end.sent == []


@pytest.mark.django_db
def test_greeting_on_the_first_message_only(number, receive, far_end):
    bot = BotFactory(number=number, greeting="Welcome! An agent will be with you shortly.")
    BotRuleFactory(bot=bot, trigger="prices", reply_text="Cheap.")
    first = receive(number, "hello")
    receive(number, "anyone?")
    receive(number, "your prices?")  # a rule still answers later messages
    replies = list(bot_replies())
    assert [reply.body for reply in replies] == [
        "Welcome! An agent will be with you shortly.",
        "Cheap.",
    ]
    assert replies[0].metadata == {"in_reply_to": first.pk, "bot_greeting": True}
    # Another client's first message gets its own greeting.
    receive(number, "hi", thread="+4915188888888")
    assert bot_replies().count() == 3


@pytest.mark.django_db
def test_a_matching_rule_beats_the_greeting_on_a_first_message(number, receive):
    bot = BotFactory(number=number, greeting="Welcome!")
    BotRuleFactory(bot=bot, trigger="prices", reply_text="Cheap.")
    receive(number, "prices?")
    assert [reply.body for reply in bot_replies()] == ["Cheap."]


@pytest.mark.django_db
def test_rules_are_tried_in_order_and_inactive_ones_skipped(admin_user, bot, number, receive):
    general = BotRuleFactory(bot=bot, position=0, trigger="price", reply_text="general")
    specific = BotRuleFactory(bot=bot, position=1, trigger="price list", reply_text="specific")
    receive(number, "send the price list")
    services.reorder_rules(admin_user, bot, [specific.pk, general.pk])
    receive(number, "send the price list")
    services.update_rule(admin_user, specific, is_active=False)
    receive(number, "send the price list")
    assert [reply.body for reply in bot_replies()] == ["general", "specific", "general"]


@pytest.mark.django_db
def test_inactive_bot_does_not_answer(bot, number, receive, far_end):
    BotRuleFactory(bot=bot, trigger="prices")
    bot.is_active = False
    bot.save()
    receive(number, "prices?")
    assert not bot_replies().exists() and far_end.sent == []


@pytest.mark.django_db
def test_inactive_number_does_not_answer(bot, number, far_end, eager_celery):
    BotRuleFactory(bot=bot, trigger="prices")
    inbound = ingest_inbound(number, "t", "wamid.1", SENDER, "prices?")
    number.is_active = False  # deactivated before the task ran
    number.save()
    answer_with_bots.delay(inbound.message.pk)
    assert not bot_replies().exists() and far_end.sent == []


@pytest.mark.django_db
def test_outbound_messages_never_trigger(bot, number, far_end, eager_celery):
    BotRuleFactory(bot=bot, trigger="prices")
    conversation = ConversationFactory(company=number.company, source=number)
    agent_message = MessageFactory(
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.SENT,
        body="Our prices are on the site",
    )
    answer_with_bots.delay(agent_message.pk)
    assert not bot_replies().exists() and far_end.sent == []


@pytest.mark.django_db
def test_a_bots_own_reply_never_triggers_it(bot, number, receive):
    # The reply contains the trigger; running the engine on it must not answer it.
    BotRuleFactory(bot=bot, trigger="prices", reply_text="Our prices: see the site.")
    receive(number, "prices?")
    reply = bot_replies().get()
    answer_with_bots.delay(reply.pk)
    assert bot_replies().count() == 1


@pytest.mark.django_db
def test_auto_submitted_messages_never_trigger(number, receive, far_end):
    bot = BotFactory(number=number, greeting="Welcome!")
    BotRuleFactory(bot=bot, trigger="prices")
    receive(number, "Out of office: prices soon", metadata={"auto_submitted": "auto-replied"})
    receive(number, "prices newsletter", metadata={"bulk": True})
    assert not bot_replies().exists() and far_end.sent == []


@pytest.mark.django_db
def test_the_task_run_twice_replies_once(bot, number, receive, far_end):
    BotRuleFactory(bot=bot, trigger="prices")
    inbound = receive(number, "prices?")
    answer_with_bots.delay(inbound.pk)
    answer_inbound(inbound.pk)
    assert bot_replies().count() == 1 and len(far_end.sent) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_for_one_message_reply_once(company, monkeypatch, queued_sends):
    number = WhatsAppNumberFactory(company=company)
    BotRuleFactory(bot__number=number, trigger="prices")
    queued = []
    monkeypatch.setattr(answer_with_bots, "delay", queued.append)  # the threads run it instead
    inbound = ingest_inbound(number, "t", "wamid.race", SENDER, "prices?").message
    assert queued == [inbound.pk]
    barrier = threading.Barrier(8)
    errors = []

    def worker():
        try:
            barrier.wait()
            answer_inbound(inbound.pk)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert bot_replies().count() == 1


@pytest.mark.django_db
def test_every_active_bot_answers_once(number, receive):
    BotRuleFactory(bot__number=number, trigger="prices", reply_text="one")
    BotRuleFactory(bot__number=number, trigger="prices", reply_text="two")
    BotRuleFactory(bot__number=number, bot__is_active=False, trigger="prices", reply_text="off")
    BotRuleFactory(trigger="prices", reply_text="another number's bot")
    receive(number, "prices")
    assert sorted(reply.body for reply in bot_replies()) == ["one", "two"]


@pytest.mark.django_db
def test_a_ping_pong_with_another_auto_responder_stops(bot, number, receive, settings):
    settings.BOT_REPLY_LIMIT = (3, 60)
    BotRuleFactory(bot=bot, trigger="prices")
    for _ in range(6):
        receive(number, "prices?")  # e.g. their bot echoing ours without an auto-submitted flag
    assert bot_replies().count() == 3


@pytest.mark.django_db
def test_only_whatsapp_messages_queue_the_engine(company, receive, far_end):
    telegram = TelegramAccountFactory(company=company)
    with pytest.MonkeyPatch.context() as patch:
        queued = []
        patch.setattr(answer_with_bots, "delay", queued.append)
        receive(telegram, "prices?", thread="777")
        number = WhatsAppNumberFactory(company=company)
        receive(number, "prices?")  # no active bot in the company: nothing queued either
        BotRuleFactory(bot__number=number, trigger="prices")
        message = receive(number, "prices?")
    assert queued == [message.pk]


# ---------------------------------------------------------------- API


@pytest.mark.django_db
def test_api_bot_crud_and_filter(admin_api, number, company):
    other_number = WhatsAppNumberFactory(company=company)
    BotFactory(number=other_number, name="Elsewhere")
    response = admin_api.post(
        "/api/v1/whatsapp/bots/",
        {"number": number.pk, "name": "Sales", "greeting": "Hello!"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["number"] == number.pk and data["rules_count"] == 0 and data["is_active"]
    bot_id = data["id"]

    listing = admin_api.get("/api/v1/whatsapp/bots/", {"number": number.pk}).json()["results"]
    assert [row["id"] for row in listing] == [bot_id]
    assert len(admin_api.get("/api/v1/whatsapp/bots/").json()["results"]) == 2
    assert admin_api.get("/api/v1/whatsapp/bots/", {"number": "x"}).status_code == 400

    response = admin_api.patch(
        f"/api/v1/whatsapp/bots/{bot_id}/", {"is_active": False}, format="json"
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    response = admin_api.patch(
        f"/api/v1/whatsapp/bots/{bot_id}/", {"number": other_number.pk}, format="json"
    )
    assert response.status_code == 400 and "number" in response.json()
    response = admin_api.patch(f"/api/v1/whatsapp/bots/{bot_id}/", {"name": ""}, format="json")
    assert response.status_code == 400 and "name" in response.json()

    BotRuleFactory(bot_id=bot_id)
    assert admin_api.get(f"/api/v1/whatsapp/bots/{bot_id}/").json()["rules_count"] == 1
    assert admin_api.delete(f"/api/v1/whatsapp/bots/{bot_id}/").status_code == 204
    assert not Bot.objects.filter(pk=bot_id).exists()
    assert not BotRule.objects.filter(bot_id=bot_id).exists()


@pytest.mark.django_db
def test_api_bot_on_another_companys_number_is_400_naming_number(admin_api, other_company):
    foreign = WhatsAppNumberFactory(company=other_company)
    for number_id in (foreign.pk, 999999999):
        response = admin_api.post(
            "/api/v1/whatsapp/bots/", {"number": number_id, "name": "x"}, format="json"
        )
        assert response.status_code == 400 and "number" in response.json()
    assert not Bot.objects.exists()


@pytest.mark.django_db
def test_api_rules_crud_order_and_reorder(admin_api, bot):
    url = f"/api/v1/whatsapp/bots/{bot.pk}/rules/"
    ids = []
    for trigger in ("a", "b", "c"):
        response = admin_api.post(
            url, {"trigger": trigger, "reply_text": f"reply {trigger}"}, format="json"
        )
        assert response.status_code == 201, response.json()
        assert response.json()["match_type"] == "keyword"
        ids.append(response.json()["id"])
    assert [row["id"] for row in admin_api.get(url).json()["results"]] == ids

    response = admin_api.post(f"{url}reorder/", {"order": ids[::-1]}, format="json")
    assert response.status_code == 200
    assert [row["position"] for row in response.json()] == [0, 1, 2]
    assert [row["id"] for row in admin_api.get(url).json()["results"]] == ids[::-1]
    response = admin_api.post(f"{url}reorder/", {"order": ids[:2]}, format="json")
    assert response.status_code == 400 and "order" in response.json()

    response = admin_api.patch(
        f"{url}{ids[0]}/", {"match_type": "regex", "trigger": r"\bprice\b"}, format="json"
    )
    assert response.status_code == 200 and response.json()["match_type"] == "regex"
    response = admin_api.patch(f"{url}{ids[0]}/", {"position": 7}, format="json")
    assert response.status_code == 200 and response.json()["position"] == 2  # read-only
    assert admin_api.delete(f"{url}{ids[1]}/").status_code == 204
    assert list(bot.rules.values_list("pk", flat=True)) == [ids[2], ids[0]]


@pytest.mark.django_db
def test_api_invalid_regex_is_400_naming_trigger(admin_api, bot):
    url = f"/api/v1/whatsapp/bots/{bot.pk}/rules/"
    response = admin_api.post(
        url, {"match_type": "regex", "trigger": "(unclosed", "reply_text": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "regular expression" in response.json()["trigger"][0]
    rule = BotRuleFactory(bot=bot, trigger="price")
    response = admin_api.patch(f"{url}{rule.pk}/", {"match_type": "regex", "trigger": "[a-"})
    assert response.status_code == 400 and "trigger" in response.json()
    rule.refresh_from_db()
    assert (rule.match_type, rule.trigger) == ("keyword", "price")
    response = admin_api.post(url, {"trigger": "x", "reply_text": "y" * 4097}, format="json")
    assert response.status_code == 400 and "reply_text" in response.json()
    assert bot.rules.count() == 1


@pytest.mark.django_db
def test_api_rules_of_another_companys_bot_are_404(admin_api, other_company):
    foreign = BotRuleFactory(bot__number__company=other_company)
    url = f"/api/v1/whatsapp/bots/{foreign.bot_id}/rules/"
    assert admin_api.get(url).status_code == 404
    assert (
        admin_api.post(url, {"trigger": "x", "reply_text": "y"}, format="json").status_code == 404
    )
    assert admin_api.post(f"{url}reorder/", {"order": [foreign.pk]}).status_code == 404
    assert admin_api.get(f"/api/v1/whatsapp/bots/{foreign.bot_id}/").status_code == 404


@pytest.mark.django_db
def test_api_agents_read_but_cannot_write(api_for, agent_user, number):
    bot = BotFactory(number=number)
    rule = BotRuleFactory(bot=bot)
    agent = api_for(agent_user)
    assert agent.get("/api/v1/whatsapp/bots/").status_code == 200
    assert agent.get(f"/api/v1/whatsapp/bots/{bot.pk}/rules/").status_code == 200
    writes = [
        agent.post("/api/v1/whatsapp/bots/", {"number": number.pk, "name": "x"}, format="json"),
        agent.patch(f"/api/v1/whatsapp/bots/{bot.pk}/", {"name": "x"}, format="json"),
        agent.delete(f"/api/v1/whatsapp/bots/{bot.pk}/"),
        agent.post(
            f"/api/v1/whatsapp/bots/{bot.pk}/rules/",
            {"trigger": "x", "reply_text": "y"},
            format="json",
        ),
        agent.patch(f"/api/v1/whatsapp/bots/{bot.pk}/rules/{rule.pk}/", {"trigger": "x"}),
        agent.delete(f"/api/v1/whatsapp/bots/{bot.pk}/rules/{rule.pk}/"),
        agent.post(f"/api/v1/whatsapp/bots/{bot.pk}/rules/reorder/", {"order": [rule.pk]}),
    ]
    assert [response.status_code for response in writes] == [403] * len(writes)
    assert Bot.objects.count() == 1 and BotRule.objects.get().trigger == "price"


# ---------------------------------------------------------------- pages


@pytest.mark.django_db
def test_settings_links_each_number_to_its_bots(client, agent_user, number):
    client.force_login(agent_user)
    content = client.get(reverse("settings")).content.decode()
    assert f'href="{reverse("number_bots", args=[number.pk])}"' in content


@pytest.mark.django_db
def test_admin_manages_bots_and_rules_on_pages(client, admin_user, number):
    client.force_login(admin_user)
    response = client.post(
        reverse("number_bot_create", args=[number.pk]),
        {"name": "Sales", "greeting": "Hi!", "is_active": "on"},
    )
    bot = Bot.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "bot_detail", args=[bot.pk]
    )
    listing = client.get(reverse("number_bots", args=[number.pk])).content.decode()
    assert "Sales" in listing and reverse("number_bot_create", args=[number.pk]) in listing

    add = reverse("bot_rule_create", args=[bot.pk])
    response = client.post(add, {"match_type": "regex", "trigger": "(oops", "reply_text": "x"})
    assert response.status_code == 200
    assert "regular expression" in str(response.context["form"].errors["trigger"])
    for trigger in ("first", "second"):
        response = client.post(
            add, {"match_type": "keyword", "trigger": trigger, "reply_text": trigger.upper()}
        )
        assert response.status_code == 302
    first, second = bot.rules.all()
    detail = client.get(reverse("bot_detail", args=[bot.pk])).content.decode()
    assert detail.index("SECOND") > detail.index("FIRST")
    assert reverse("botrule_move", args=[first.pk]) in detail

    client.post(reverse("botrule_move", args=[second.pk]), {"direction": "up"})
    assert list(bot.rules.values_list("trigger", flat=True)) == ["second", "first"]
    client.post(reverse("botrule_move", args=[second.pk]), {"direction": "down"})
    assert list(bot.rules.values_list("trigger", flat=True)) == ["first", "second"]

    response = client.post(
        reverse("botrule_edit", args=[first.pk]),
        {"match_type": "keyword", "trigger": "prices", "reply_text": "Cheap", "is_active": "on"},
    )
    assert response.status_code == 302
    first.refresh_from_db()
    assert (first.trigger, first.reply_text) == ("prices", "Cheap")

    client.post(reverse("botrule_toggle", args=[first.pk]))
    first.refresh_from_db()
    assert not first.is_active
    client.post(reverse("bot_toggle", args=[bot.pk]), {"next": "list"})
    bot.refresh_from_db()
    assert not bot.is_active
    response = client.post(reverse("bot_edit", args=[bot.pk]), {"name": "Sales 2", "greeting": ""})
    bot.refresh_from_db()
    assert response.status_code == 302 and bot.name == "Sales 2" and not bot.is_active

    client.post(reverse("botrule_delete", args=[second.pk]))
    assert list(bot.rules.values_list("pk", flat=True)) == [first.pk]
    confirm = client.get(reverse("bot_delete", args=[bot.pk])).content.decode()
    assert "1 rule" in confirm and "irreversibly" in confirm
    response = client.post(reverse("bot_delete", args=[bot.pk]))
    assert response["Location"] == reverse("number_bots", args=[number.pk])
    assert not Bot.objects.exists() and not BotRule.objects.exists()


@pytest.mark.django_db
def test_agents_see_bots_read_only_and_get_403_on_writes(client, agent_user, number):
    bot = BotFactory(number=number, name="Helper")
    rule = BotRuleFactory(bot=bot, trigger="hours")
    client.force_login(agent_user)
    listing = client.get(reverse("number_bots", args=[number.pk])).content.decode()
    detail = client.get(reverse("bot_detail", args=[bot.pk])).content.decode()
    assert "Helper" in listing and "hours" in detail
    assert reverse("number_bot_create", args=[number.pk]) not in listing
    assert reverse("bot_rule_create", args=[bot.pk]) not in detail
    assert "<form" not in detail.split('<main class="main"')[1]
    for name, arg in (("number_bot_create", number.pk), ("bot_edit", bot.pk)):
        assert client.get(reverse(name, args=[arg])).status_code == 403
    posts = [
        (reverse("number_bot_create", args=[number.pk]), {"name": "x"}),
        (reverse("bot_edit", args=[bot.pk]), {"name": "x"}),
        (reverse("bot_toggle", args=[bot.pk]), {}),
        (reverse("bot_delete", args=[bot.pk]), {}),
        (reverse("bot_rule_create", args=[bot.pk]), {"trigger": "x", "reply_text": "y"}),
        (reverse("botrule_edit", args=[rule.pk]), {"trigger": "x", "reply_text": "y"}),
        (reverse("botrule_delete", args=[rule.pk]), {}),
        (reverse("botrule_move", args=[rule.pk]), {"direction": "up"}),
        (reverse("botrule_toggle", args=[rule.pk]), {}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    bot.refresh_from_db()
    assert bot.name == "Helper" and bot.is_active and BotRule.objects.get().trigger == "hours"


@pytest.mark.django_db
def test_another_companys_bots_are_404_on_pages(client, admin_user, other_company):
    rule = BotRuleFactory(bot__number__company=other_company)
    client.force_login(admin_user)
    gets = [
        reverse("number_bots", args=[rule.bot.number_id]),
        reverse("number_bot_create", args=[rule.bot.number_id]),
        reverse("bot_detail", args=[rule.bot_id]),
        reverse("bot_edit", args=[rule.bot_id]),
        reverse("bot_delete", args=[rule.bot_id]),
        reverse("botrule_edit", args=[rule.pk]),
    ]
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url in (
        reverse("bot_delete", args=[rule.bot_id]),
        reverse("bot_toggle", args=[rule.bot_id]),
        reverse("botrule_delete", args=[rule.pk]),
        reverse("botrule_toggle", args=[rule.pk]),
    ):
        assert client.post(url).status_code == 404, url
    assert BotRule.objects.filter(pk=rule.pk, bot__is_active=True, is_active=True).exists()


@pytest.mark.django_db
def test_bot_pages_render_for_members(client, admin_user, number):
    bot = BotFactory(number=number, greeting="Welcome")
    rule = BotRuleFactory(bot=bot)
    member = UserFactory(company=number.company)
    for user in (admin_user, member):
        client.force_login(user)
        for url in (
            reverse("number_bots", args=[number.pk]),
            reverse("bot_detail", args=[bot.pk]),
        ):
            assert client.get(url).status_code == 200
    client.force_login(admin_user)
    for url in (
        reverse("number_bot_create", args=[number.pk]),
        reverse("bot_edit", args=[bot.pk]),
        reverse("bot_delete", args=[bot.pk]),
        reverse("bot_rule_create", args=[bot.pk]),
        reverse("botrule_edit", args=[rule.pk]),
    ):
        assert client.get(url).status_code == 200, url


# ---------------------------------------------------------------- patterns that backtrack


@pytest.mark.parametrize("trigger", [r"(a|aa)+$", r"(a|a)+$", r"(x|xx)+y"])
def test_a_pattern_that_backtracks_for_long_is_refused_on_save(admin_user, bot, trigger):
    with pytest.raises(ValidationError) as error:
        services.create_rule(
            admin_user, bot, match_type="regex", trigger=trigger, reply_text="Hello"
        )
    assert "too long" in error.value.message_dict["trigger"][0]
    assert not bot.rules.exists()


def test_ordinary_patterns_are_saved(admin_user, bot):
    for trigger in (r"(a+)+$", r"order\s*#?\d{3,8}", r"^(hi|hello|привіт|здравствуйте)\b"):
        services.create_rule(admin_user, bot, match_type="regex", trigger=trigger, reply_text="Hi")
    assert bot.rules.count() == 3


def test_a_slow_pattern_saved_before_the_check_gives_up_in_time(bot, settings):
    """A rule stored before patterns were checked: matching gives up after
    BOT_REGEX_TIMEOUT_SECONDS and counts as no match, instead of holding the worker."""
    import time

    from channels_integrations.models import BotRule

    settings.BOT_REGEX_TIMEOUT_SECONDS = 0.05
    rule = BotRule.objects.create(
        bot=bot, match_type="regex", trigger=r"(a|aa)+$", reply_text="never", position=1
    )
    started = time.monotonic()
    assert services.rule_matches(rule, "a" * 200 + "!") is False
    assert time.monotonic() - started < 2.0
    assert services.rule_matches(rule, "aaaa") is True
