"""Deletes reach PostgreSQL as ON DELETE CASCADE / SET NULL: the constraints say so, and one SQL
DELETE of a parent removes its whole tree (nothing loaded into Python)."""

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction

from channels_integrations.models import (
    Bot,
    BotRule,
    Broadcast,
    BroadcastRecipient,
    WhatsAppNumber,
    WhatsAppSession,
)
from crm.services import delete_in_database
from messaging.models import (
    Attachment,
    ChatMember,
    ChatMessage,
    Conversation,
    Message,
    Reaction,
    TeamChat,
)

from .factories import (
    AttachmentFactory,
    BotRuleFactory,
    BroadcastRecipientFactory,
    ChatMemberFactory,
    ConversationFactory,
    EmailAccountFactory,
    InstagramAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    ReactionFactory,
    SandboxInboxFactory,
    TelegramAccountFactory,
    WhatsAppNumberFactory,
    WhatsAppSessionFactory,
)

pytestmark = pytest.mark.django_db

EXPECTED_ACTION = {models.CASCADE: "c", models.SET_NULL: "n"}


def _constraint_actions() -> dict[tuple[str, str], str]:
    """(table, column) -> confdeltype for every single-column foreign key in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, a.attname, c.confdeltype
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND array_length(c.conkey, 1) = 1
            """
        )
        return {(table.strip('"'), column): action for table, column, action in cursor.fetchall()}


def test_every_cascade_and_set_null_foreign_key_has_the_same_rule_in_postgresql():
    actions = _constraint_actions()
    wrong, checked = [], 0
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.local_fields:
            if not (field.many_to_one or field.one_to_one):
                continue
            expected = EXPECTED_ACTION.get(field.remote_field.on_delete)
            if expected is None or not field.db_constraint:
                continue
            checked += 1
            actual = actions.get((model._meta.db_table, field.column))
            if actual != expected:
                wrong.append(
                    f"{model._meta.label}.{field.name}: expected {expected!r}, found {actual!r}"
                )
    assert not wrong, "foreign keys whose PostgreSQL rule differs from on_delete:\n" + "\n".join(
        wrong
    )
    assert checked >= 30  # the test really looked at our models


def _number_with_everything(company=None):
    number = WhatsAppNumberFactory(**({"company": company} if company else {}))
    WhatsAppSessionFactory(number=number)
    BotRuleFactory.create_batch(2, bot__number=number)
    BroadcastRecipientFactory.create_batch(3, broadcast__number=number)
    for _ in range(2):
        conversation = ConversationFactory(company=number.company, source=number)
        messages = MessageFactory.create_batch(3, conversation=conversation)
        AttachmentFactory(message=messages[0])
    return number


def _counts(number_id):
    return {
        "bots": Bot.objects.filter(number_id=number_id).count(),
        "rules": BotRule.objects.filter(bot__number_id=number_id).count(),
        "broadcasts": Broadcast.objects.filter(number_id=number_id).count(),
        "recipients": BroadcastRecipient.objects.filter(broadcast__number_id=number_id).count(),
        "session": WhatsAppSession.objects.filter(number_id=number_id).count(),
        "conversations": Conversation.objects.filter(
            platform="whatsapp", source_id=number_id
        ).count(),
        "messages": Message.objects.filter(
            conversation__platform="whatsapp", conversation__source_id=number_id
        ).count(),
        "attachments": Attachment.objects.filter(
            conversation__platform="whatsapp", conversation__source_id=number_id
        ).count(),
    }


def test_one_sql_delete_of_a_number_removes_its_whole_tree_and_nothing_else(
    django_assert_num_queries,
):
    number = _number_with_everything()
    other = _number_with_everything(company=number.company)
    assert _counts(number.pk) == {
        "bots": 2, "rules": 2, "broadcasts": 3, "recipients": 3,
        "session": 1, "conversations": 2, "messages": 6, "attachments": 2,
    }  # fmt: skip
    before_other = _counts(other.pk)

    with django_assert_num_queries(3):  # SAVEPOINT, DELETE, RELEASE: no child row loaded
        deleted = delete_in_database(number)

    assert deleted == 1
    assert not WhatsAppNumber.objects.filter(pk=number.pk).exists()
    assert set(_counts(number.pk).values()) == {0}
    assert _counts(other.pk) == before_other


@pytest.mark.parametrize("factory", [TelegramAccountFactory, EmailAccountFactory])
def test_deleting_a_telegram_or_email_account_deletes_its_conversations_and_messages(factory):
    account = factory()
    conversation = ConversationFactory(company=account.company, source=account)
    MessageFactory.create_batch(4, conversation=conversation)
    kept = MessageFactory(conversation__company=account.company)

    delete_in_database(account)

    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert Message.objects.filter(pk=kept.pk).exists()


def test_deleting_a_chat_deletes_members_messages_and_reactions():
    reaction = ReactionFactory()
    chat = reaction.message.chat
    ChatMemberFactory.create_batch(2, chat=chat)
    other = ReactionFactory()

    delete_in_database(chat)

    assert not TeamChat.objects.filter(pk=chat.pk).exists()
    assert not ChatMember.objects.filter(chat_id=chat.pk).exists()
    assert not ChatMessage.objects.filter(chat_id=chat.pk).exists()
    assert not Reaction.objects.filter(message__chat_id=chat.pk).exists()
    assert Reaction.objects.filter(pk=other.pk).exists()


def test_deleting_a_user_keeps_their_messages_with_author_cleared():
    message = MessageFactory(direction=Message.Direction.OUTBOUND, status=Message.Status.SENT)
    from .factories import UserFactory

    author = UserFactory(company=message.conversation.company)
    Message.objects.filter(pk=message.pk).update(author=author)

    delete_in_database(author)

    message.refresh_from_db()
    assert message.author_id is None


def test_deleting_a_company_leaves_no_row_of_it_anywhere():
    number = _number_with_everything()
    company = number.company
    ReactionFactory(message__chat__company=company)
    kept = _number_with_everything()

    delete_in_database(company)

    assert WhatsAppNumber.objects.filter(company=company).count() == 0
    assert Conversation.objects.filter(company=company).count() == 0
    assert TeamChat.objects.filter(company=company).count() == 0
    assert set(_counts(number.pk).values()) == {0}
    assert _counts(kept.pk)["messages"] == 6


def test_deleting_companies_deletes_their_webhook_deliveries_in_postgresql():
    """The inbox's company column has no constraint (the fast path's INSERTs would lock the
    company's row): a trigger deletes a company's deliveries, by any kind of delete."""
    from webhook_inbox.models import Delivery

    doomed, kept = WhatsAppNumberFactory(), WhatsAppNumberFactory()
    for number in (doomed, doomed, kept):
        Delivery.objects.create(
            company=number.company, source="whatsapp_cloud", source_id=number.pk, body=b"{}"
        )
    with connection.cursor() as cursor:  # plain SQL: no Python in between
        cursor.execute("DELETE FROM accounts_company WHERE id = %s", [doomed.company_id])
    assert not Delivery.objects.filter(company_id=doomed.company_id).exists()
    assert Delivery.objects.filter(company_id=kept.company_id).count() == 1


def test_every_channel_deletes_its_conversations_with_its_source_in_postgresql():
    """Conversations name their source by (platform, source id): each registered channel's
    source table carries the trigger that deletes them with it, by any kind of delete."""
    from messaging import channels
    from messaging.db import trigger_name

    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
        triggers = {name for (name,) in cursor.fetchall()}
    factories = {
        "whatsapp": WhatsAppNumberFactory,
        "telegram": TelegramAccountFactory,
        "email": EmailAccountFactory,
        "facebook": MessengerPageFactory,
        "instagram": InstagramAccountFactory,
        "sandbox": SandboxInboxFactory,
    }
    assert set(factories) == {channel.platform for channel in channels.registered()}
    for channel in channels.registered():
        table = channel.source_model._meta.db_table
        assert trigger_name(table) in triggers, f"{table} keeps its conversations when deleted"
        source, same_id_elsewhere = factories[channel.platform](), None
        conversation = ConversationFactory(company=source.company, source=source)
        MessageFactory.create_batch(2, conversation=conversation)
        # Another channel's source with the same id keeps its conversations.
        for other in channels.registered():
            if other is not channel:
                same_id_elsewhere = ConversationFactory(
                    company=source.company, platform=other.platform, source_id=source.pk
                )
                break
        with connection.cursor() as cursor:  # plain SQL: no Python in between
            cursor.execute(f"DELETE FROM {table} WHERE id = %s", [source.pk])  # noqa: S608
        assert not Conversation.objects.filter(pk=conversation.pk).exists()
        assert not Message.objects.filter(conversation_id=conversation.pk).exists()
        assert Conversation.objects.filter(pk=same_id_elsewhere.pk).exists()


def test_external_ids_are_unique_per_source_account_and_per_conversation():
    conversation = ConversationFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ConversationFactory(
            company=conversation.company,
            source=conversation.source,
            external_thread_id=conversation.external_thread_id,
        )
    # The same thread id on another number is another conversation.
    ConversationFactory(
        company=conversation.company, external_thread_id=conversation.external_thread_id
    )
    MessageFactory(conversation=conversation, external_id="wamid.1")
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=conversation, external_id="wamid.1")
    # Outbound messages not yet accepted by a provider have no external id; many may wait.
    MessageFactory.create_batch(2, conversation=conversation, external_id=None)
