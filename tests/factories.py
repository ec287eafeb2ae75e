import datetime

import factory
from django.utils import timezone

from accounts.models import Company, Role, User
from channels_integrations.models import (
    Bot,
    BotRule,
    Broadcast,
    BroadcastRecipient,
    EmailAccount,
    EmailMessageRecord,
    TelegramAccount,
    WhatsAppNumber,
    WhatsAppSession,
)
from crm.models import Client
from messaging import channels
from messaging.models import (
    Attachment,
    ChatMember,
    ChatMessage,
    Conversation,
    Message,
    Reaction,
    TeamChat,
)

PASSWORD = "correct-horse-battery"


class CompanyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    company = factory.SubFactory(CompanyFactory)
    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.AGENT
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Client {n}")
    phone = factory.Sequence(lambda n: f"+4915100{n:06d}")


class WhatsAppNumberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WhatsAppNumber

    company = factory.SubFactory(CompanyFactory)
    phone = factory.Sequence(lambda n: f"+4917000{n:06d}")
    display_name = factory.Sequence(lambda n: f"Line {n}")
    cloud_phone_number_id = factory.Sequence(lambda n: f"1065{n:08d}")
    cloud_access_token = "EAAG-secret-access-token"
    cloud_app_secret = "app-secret-value"
    cloud_verify_token = "verify-token-value"


class WhatsAppSessionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WhatsAppSession

    number = factory.SubFactory(WhatsAppNumberFactory)


class BotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Bot

    number = factory.SubFactory(WhatsAppNumberFactory)
    name = factory.Sequence(lambda n: f"Bot {n}")


class BotRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BotRule

    bot = factory.SubFactory(BotFactory)
    position = factory.Sequence(int)
    trigger = "price"
    reply_text = "Our prices are on the website."


class BroadcastFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Broadcast

    number = factory.SubFactory(WhatsAppNumberFactory)
    text = "Hello from us"


class BroadcastRecipientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BroadcastRecipient

    broadcast = factory.SubFactory(BroadcastFactory)
    phone = factory.Sequence(lambda n: f"+4916000{n:06d}")


class TelegramAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TelegramAccount

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Telegram {n}")
    phone = factory.Sequence(lambda n: f"+4917100{n:06d}")
    api_id = 28906808
    api_hash = "0123456789abcdef0123456789abcdef"
    session_string = "1BVtsOKABu-secret-session-string"


class EmailAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailAccount

    company = factory.SubFactory(CompanyFactory)
    address = factory.Sequence(lambda n: f"support{n}@example.com")
    imap_host = "127.0.0.1"
    smtp_host = "127.0.0.1"
    username = factory.LazyAttribute(lambda a: a.address)
    password = "mailbox-secret-password"


class EmailMessageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailMessageRecord

    account = factory.SubFactory(EmailAccountFactory)
    message_id = factory.Sequence(lambda n: f"mail{n}@example.org")
    direction = EmailMessageRecord.Direction.INBOUND


class ConversationFactory(factory.django.DjangoModelFactory):
    """A WhatsApp conversation by default; `source=` any channel's number or account."""

    class Meta:
        model = Conversation

    class Params:
        source = factory.SubFactory(
            WhatsAppNumberFactory, company=factory.SelfAttribute("..company")
        )

    company = factory.SubFactory(CompanyFactory)
    platform = factory.LazyAttribute(lambda c: channels.for_source(c.source).platform)
    source_id = factory.LazyAttribute(lambda c: c.source.pk)
    external_thread_id = factory.Sequence(lambda n: f"thread-{n}")
    client = factory.SubFactory(ClientFactory, company=factory.SelfAttribute("..company"))
    last_message_at = factory.LazyFunction(timezone.now)
    # The client wrote just now: a reply window (WhatsApp Cloud's 24 h) is open.
    last_inbound_at = factory.LazyFunction(timezone.now)


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    direction = Message.Direction.INBOUND
    external_id = factory.Sequence(lambda n: f"ext-{n}")
    body = "Hello, is anybody there?"
    status = Message.Status.RECEIVED


class AttachmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Attachment

    message = factory.SubFactory(MessageFactory)
    conversation = factory.SelfAttribute("message.conversation")
    kind = Attachment.Kind.DOCUMENT
    filename = "invoice.pdf"
    content_type = "application/pdf"
    size = 9


class TeamChatFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TeamChat

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Chat {n}")


class ChatMemberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatMember

    chat = factory.SubFactory(TeamChatFactory)
    user = factory.LazyAttribute(lambda m: UserFactory(company=m.chat.company))


class ChatMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChatMessage

    chat = factory.SubFactory(TeamChatFactory)
    author = factory.LazyAttribute(lambda m: UserFactory(company=m.chat.company))
    body = "Who takes the next one?"


class ReactionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Reaction

    message = factory.SubFactory(ChatMessageFactory)
    user = factory.LazyAttribute(lambda r: UserFactory(company=r.message.chat.company))
    emoji = "👍"


class MessengerPageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "channels_integrations.MessengerPage"

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Page {n}")
    page_id = factory.Sequence(lambda n: f"10{n:08d}")
    page_access_token = factory.Sequence(lambda n: f"EAAPageToken{n:04d}")
    app_secret = "meta-app-secret"
    verify_token = "meta-verify-token"


class InstagramAccountFactory(MessengerPageFactory):
    class Meta:
        model = "channels_integrations.InstagramAccount"

    name = factory.Sequence(lambda n: f"Instagram {n}")
    ig_user_id = factory.Sequence(lambda n: f"1784{n:08d}")


def wrote_today(number, phones=()):
    """These phones, and every client of the company with a phone, wrote to `number` an hour
    ago: the Cloud API's 24-hour window is open, so a free-text broadcast may reach them (the
    window itself: test_whatsapp_templates.py)."""
    clients = Client.objects.filter(company_id=number.company_id).exclude(phone="")
    wanted = {str(p).lstrip("+") for p in phones} | {
        str(p).lstrip("+") for p in clients.values_list("phone", flat=True)
    }
    Conversation.objects.bulk_create(
        [
            Conversation(
                company_id=number.company_id,
                platform="whatsapp",
                source_id=number.pk,
                external_thread_id=digits,
                last_inbound_at=timezone.now() - datetime.timedelta(hours=1),
            )
            for digits in wanted
        ],
        ignore_conflicts=True,
    )


# ---------------------------------------------------------------- deals


def default_stages(pipeline, names=("New", "Qualified", "Proposal", "Won-ready")):
    from deals.models import Stage

    return [
        Stage.objects.create(pipeline=pipeline, name=name, position=i)
        for i, name in enumerate(names)
    ]


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "deals.Pipeline"
        skip_postgeneration_save = True

    company = factory.SubFactory(CompanyFactory)
    name = factory.Sequence(lambda n: f"Pipeline {n}")

    @factory.post_generation
    def stages(obj, create, extracted, **kwargs):
        if create:
            default_stages(obj, extracted or ("New", "Qualified", "Proposal", "Won-ready"))


class DealFactory(factory.django.DjangoModelFactory):
    """A deal in the first stage of a new pipeline of the client's company, with its
    creation step in the history."""

    class Meta:
        model = "deals.Deal"
        skip_postgeneration_save = True

    company = factory.SubFactory(CompanyFactory)
    pipeline = factory.SubFactory(PipelineFactory, company=factory.SelfAttribute("..company"))
    stage = factory.LazyAttribute(lambda d: d.pipeline.stages.order_by("position").first())
    client = factory.SubFactory(ClientFactory, company=factory.SelfAttribute("..company"))
    title = factory.Sequence(lambda n: f"Deal {n}")
    amount = 100
    currency = "EUR"

    @factory.post_generation
    def _history(obj, create, extracted, **kwargs):
        if create:
            obj.history.create(to_stage=obj.stage, to_name=obj.stage.name, to_status=obj.status)


class SandboxInboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "channels_integrations.SandboxInbox"
        django_get_or_create = ("company",)

    company = factory.SubFactory(CompanyFactory)
