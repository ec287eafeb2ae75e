"""The Django admin: superusers only, every model listed in constant queries, secrets masked,
deletes through the database's cascades."""

import itertools

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.forms import MultiWidget
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import ApiToken, Company, Role, User
from channels_integrations.meta.models import InstagramAccount, MessengerPage
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
from crm.admin_utils import SecretFieldsAdminMixin
from crm.fields import SecretField
from crm.models import Client
from messaging.models import (
    Attachment,
    ChatMember,
    ChatMessage,
    Conversation,
    Message,
    Reaction,
    TeamChat,
)
from webhook_inbox.models import Delivery

from .factories import (
    PASSWORD,
    AttachmentFactory,
    BotFactory,
    BotRuleFactory,
    BroadcastFactory,
    BroadcastRecipientFactory,
    ChatMemberFactory,
    ChatMessageFactory,
    ClientFactory,
    CompanyFactory,
    ConversationFactory,
    EmailAccountFactory,
    EmailMessageRecordFactory,
    InstagramAccountFactory,
    MessageFactory,
    MessengerPageFactory,
    ReactionFactory,
    TeamChatFactory,
    TelegramAccountFactory,
    UserFactory,
    WhatsAppNumberFactory,
    WhatsAppSessionFactory,
)

_seq = itertools.count()

FACTORIES = {
    Company: CompanyFactory,
    User: UserFactory,
    ApiToken: lambda: ApiToken.issue(UserFactory(), "ci")[0],
    Group: lambda: Group.objects.create(name=f"group-{next(_seq)}"),
    Client: ClientFactory,
    WhatsAppNumber: WhatsAppNumberFactory,
    Bot: BotFactory,
    BotRule: BotRuleFactory,
    Broadcast: BroadcastFactory,
    BroadcastRecipient: BroadcastRecipientFactory,
    WhatsAppSession: WhatsAppSessionFactory,
    TelegramAccount: TelegramAccountFactory,
    EmailAccount: EmailAccountFactory,
    EmailMessageRecord: EmailMessageRecordFactory,
    MessengerPage: MessengerPageFactory,
    InstagramAccount: InstagramAccountFactory,
    Conversation: ConversationFactory,
    Message: MessageFactory,
    Attachment: AttachmentFactory,
    TeamChat: TeamChatFactory,
    ChatMember: ChatMemberFactory,
    ChatMessage: ChatMessageFactory,
    Reaction: ReactionFactory,
    Delivery: lambda: Delivery.objects.create(
        company=CompanyFactory(), source="whatsapp_cloud", source_id=1, body=b'{"entry": []}'
    ),
}

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


def url(model_or_obj, view, *args):
    opts = model_or_obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(
        username="root", password=PASSWORD, email="root@example.com"
    )


@pytest.fixture
def su_client(client, superuser):
    """A client logged in as a platform superuser (no company).

    Not pytest-django's `admin_client`: tests/conftest.py's `admin_user` (a company admin)
    shadows the superuser that fixture would log in.
    """
    client.force_login(superuser)
    return client


def form_data(response) -> dict:
    """The POST data a browser would send back for the admin form in `response`, unchanged."""
    data = {}

    def add_form(form):
        for bound in form:
            if isinstance(bound.field.widget, MultiWidget):
                raise NotImplementedError(bound.name)
            value = bound.value()
            if value is None or value is False:
                continue
            if value is True:
                value = "on"
            elif isinstance(value, list | tuple):
                value = [str(v) for v in value]
            else:
                value = str(value)
            data[bound.html_name] = value

    add_form(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        add_form(formset.management_form)
        for form in formset.forms:
            add_form(form)
    return data


# ---------------------------------------------------------------- every model


def test_every_registered_model_has_a_factory_here():
    assert set(REGISTERED) == set(FACTORIES)
    expected = {
        Company, User, ApiToken, Client, WhatsAppNumber, Bot, BotRule, Broadcast,
        BroadcastRecipient, WhatsAppSession, TelegramAccount, EmailAccount, Conversation,
        Message, Attachment, TeamChat, ChatMember, ChatMessage, Reaction,
    }  # fmt: skip
    assert expected <= set(REGISTERED)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_changelist_add_and_change_pages_render(su_client, model):
    obj = FACTORIES[model]()
    model_admin = admin.site._registry[model]

    assert su_client.get(url(model, "changelist")).status_code == 200
    assert su_client.get(url(model, "changelist"), {"q": "x"}).status_code == 200
    assert su_client.get(url(model, "change", obj.pk)).status_code == 200
    add = su_client.get(url(model, "add"))
    assert add.status_code == (200 if model_admin.has_add_permission(add.wsgi_request) else 403)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_changelist_runs_a_constant_number_of_queries(
    su_client, model, django_assert_max_num_queries
):
    FACTORIES[model]()
    with CaptureQueriesContext(connection) as few:
        assert su_client.get(url(model, "changelist")).status_code == 200
    for _ in range(4):
        FACTORIES[model]()
    with django_assert_max_num_queries(len(few)):
        response = su_client.get(url(model, "changelist"))
    assert response.context["cl"].result_count == model._default_manager.count() >= 5


def test_message_changelist_queries_do_not_grow_with_rows(su_client, django_assert_max_num_queries):
    conversation = ConversationFactory()
    MessageFactory.create_batch(5, conversation=conversation)
    changelist = url(Message, "changelist")
    with CaptureQueriesContext(connection) as five:
        assert su_client.get(changelist).status_code == 200

    MessageFactory.create_batch(20, conversation=conversation)
    MessageFactory.create_batch(5)  # other conversations, other companies
    with django_assert_max_num_queries(len(five)):
        response = su_client.get(changelist)
    assert len(response.context["cl"].result_list) == 30
    # Filtering by company doesn't count the whole table as well.
    with django_assert_max_num_queries(len(five)):
        response = su_client.get(
            changelist, {"conversation__company__id__exact": conversation.company_id}
        )
    assert response.context["cl"].result_count == 25
    assert response.context["cl"].full_result_count is None


def test_superuser_sees_every_company(su_client):
    a, b = ClientFactory(name="Client of A"), ClientFactory(name="Client of B")
    assert a.company_id != b.company_id
    response = su_client.get(url(Client, "changelist"))
    assert {c.pk for c in response.context["cl"].result_list} == {a.pk, b.pk}


# ---------------------------------------------------------------- superusers only


@pytest.fixture
def staff_company_admin(admin_user):
    admin_user.is_staff = True
    admin_user.save()
    assert admin_user.role == Role.ADMIN and not admin_user.is_superuser
    return admin_user


@pytest.mark.parametrize(
    "path",
    ["admin:index", "admin:accounts_company_changelist", "admin:crm_client_add"],
)
def test_company_admin_with_staff_flag_is_sent_to_the_login(client, staff_company_admin, path):
    client.force_login(staff_company_admin)
    response = client.get(reverse(path))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_company_admin_cannot_log_in_to_the_admin(client, staff_company_admin):
    response = client.post(
        reverse("admin:login"), {"username": staff_company_admin.username, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_superuser_can_log_in_to_the_admin(client, superuser):
    response = client.post(reverse("admin:login"), {"username": "root", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


# ---------------------------------------------------------------- secrets

SECRETS = {
    WhatsAppNumber: {
        "cloud_access_token": "EAAG-known-access-token-4711",
        "cloud_app_secret": "known-app-secret-4712",
        "cloud_verify_token": "known-verify-token-4713",
    },
    TelegramAccount: {
        "api_hash": "feedfacecafebeef0123456789abcdef",
        "session_string": "1BVtsOK-known-session-string-4714",
    },
    EmailAccount: {"password": "known-mailbox-password-4715"},
    MessengerPage: {
        "page_access_token": "EAAP-known-page-token-4716",
        "app_secret": "known-meta-app-secret-4717",
        "verify_token": "known-meta-verify-4718",
    },
    InstagramAccount: {
        "page_access_token": "EAAP-known-page-token-4719",
        "app_secret": "known-meta-app-secret-4720",
        "verify_token": "known-meta-verify-4721",
    },
}
SECRET_FACTORIES = {
    WhatsAppNumber: WhatsAppNumberFactory,
    TelegramAccount: TelegramAccountFactory,
    EmailAccount: EmailAccountFactory,
    MessengerPage: MessengerPageFactory,
    InstagramAccount: InstagramAccountFactory,
}


def stored_ciphertexts(obj, fields):
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(fields)} FROM {obj._meta.db_table} WHERE id = %s",  # noqa: S608
            [obj.pk],
        )
        return [value for value in cursor.fetchone() if value]


@pytest.mark.parametrize("model", list(SECRETS), ids=lambda m: m.__name__)
def test_secrets_never_appear_in_admin_pages(su_client, model):
    secrets = SECRETS[model]
    obj = SECRET_FACTORIES[model](**secrets)
    ciphertexts = stored_ciphertexts(obj, list(secrets))
    assert len(ciphertexts) == len(secrets)

    pages = [
        url(model, "change", obj.pk),
        url(model, "changelist"),
        url(model, "delete", obj.pk),
        url(model, "history", obj.pk),
        url(Company, "change", obj.company_id),
    ]
    for page in pages:
        response = su_client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        for value in [*secrets.values(), *ciphertexts]:
            assert value not in html, page

    change = su_client.get(url(model, "change", obj.pk))
    form = change.context["adminform"].form
    for name in secrets:
        assert form.fields[name].help_text == "Leave blank to keep the current value."
        assert f'name="{name}"' in change.content.decode()
        assert form[name].value() == ""
    assert "not set" not in change.content.decode()  # every secret shows "set"


def test_every_model_with_secrets_is_masked_by_the_mixin():
    for model, model_admin in admin.site._registry.items():
        secret_fields = {f.name for f in model._meta.fields if isinstance(f, SecretField)}
        if secret_fields:
            assert isinstance(model_admin, SecretFieldsAdminMixin), model
            assert set(model_admin.secret_fields) == secret_fields, model
    assert set(SECRETS) == {
        model
        for model in admin.site._registry
        if any(isinstance(f, SecretField) for f in model._meta.fields)
    }


def test_a_secret_left_out_of_secret_fields_is_refused():
    class Careless(SecretFieldsAdminMixin, admin.ModelAdmin):
        secret_fields = ("api_hash",)

    with pytest.raises(ImproperlyConfigured, match="session_string"):
        Careless(TelegramAccount, admin.site)


def test_unset_secret_shows_not_set(su_client):
    number = WhatsAppNumberFactory(cloud_app_secret=None)
    html = su_client.get(url(number, "change", number.pk)).content.decode()
    assert "not set" in html


@pytest.mark.parametrize("model", list(SECRETS), ids=lambda m: m.__name__)
def test_blank_secret_keeps_the_stored_value_and_a_new_one_replaces_it(su_client, model):
    secrets = SECRETS[model]
    obj = SECRET_FACTORIES[model](**secrets)
    change_url = url(model, "change", obj.pk)

    data = form_data(su_client.get(change_url))
    assert all(data[name] == "" for name in secrets)
    label_field = {
        WhatsAppNumber: "display_name",
        TelegramAccount: "name",
        MessengerPage: "name",
        InstagramAccount: "name",
    }.get(model, "display_name")
    data[label_field] = "Renamed"
    response = su_client.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    obj.refresh_from_db()
    assert getattr(obj, label_field) == "Renamed"
    for name, value in secrets.items():
        assert getattr(obj, name) == value

    first = next(iter(secrets))
    new_value = "abcdefabcdefabcdefabcdefabcdef12" if first == "api_hash" else "brand-new-secret"
    data = form_data(su_client.get(change_url))
    data[first] = new_value
    response = su_client.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    obj.refresh_from_db()
    assert getattr(obj, first) == new_value
    for name, value in list(secrets.items())[1:]:
        assert getattr(obj, name) == value


def test_new_secret_is_still_validated(su_client):
    account = TelegramAccountFactory(**SECRETS[TelegramAccount])
    change_url = url(account, "change", account.pk)
    data = form_data(su_client.get(change_url))
    data["api_hash"] = "not-hex"
    response = su_client.post(change_url, data)
    assert response.status_code == 200
    assert "api_hash" in response.context["adminform"].form.errors
    assert "not-hex" not in response.content.decode()
    account.refresh_from_db()
    assert account.api_hash == SECRETS[TelegramAccount]["api_hash"]


def test_add_with_and_without_secrets(su_client, company):
    add_url = url(WhatsAppNumber, "add")
    data = form_data(su_client.get(add_url))
    data.update(company=str(company.pk), phone="+4915199887766", cloud_access_token="tok-123")
    assert su_client.post(add_url, data).status_code == 302
    number = WhatsAppNumber.objects.get(phone="+4915199887766")
    assert number.cloud_access_token == "tok-123"
    assert number.cloud_app_secret is None


def test_email_account_owner_must_belong_to_its_company(su_client, company, other_company):
    account = EmailAccountFactory(company=company)
    stranger = UserFactory(company=other_company)
    change_url = url(account, "change", account.pk)
    data = form_data(su_client.get(change_url))
    data["owner"] = str(stranger.pk)
    response = su_client.post(change_url, data)
    assert response.status_code == 200
    assert "owner" in response.context["adminform"].form.errors


# ---------------------------------------------------------------- company, users, tokens


def test_company_page_shows_members_channels_and_counts(su_client, company, admin_user):
    agent = UserFactory(company=company, username="carol")
    number = WhatsAppNumberFactory(company=company, display_name="Sales line")
    telegram = TelegramAccountFactory(company=company, name="Support TG")
    mailbox = EmailAccountFactory(company=company, address="help@acme.example")
    ConversationFactory.create_batch(3, company=company)  # three more numbers
    CompanyFactory(name="Empty Inc")

    html = su_client.get(url(company, "change", company.pk)).content.decode()
    for text in ["alice", "carol", "Sales line", "Support TG", "help@acme.example"]:
        assert text in html
    assert url(agent, "change", agent.pk) in html
    assert url(number, "change", number.pk) in html
    assert url(telegram, "change", telegram.pk) in html
    assert url(mailbox, "change", mailbox.pk) in html

    response = su_client.get(url(Company, "changelist"))
    rows = {c.name: c for c in response.context["cl"].result_list}
    acme = rows["Acme"]
    assert (acme.member_count, acme.number_count, acme.conversation_count) == (2, 4, 3)
    empty = rows["Empty Inc"]
    assert (empty.member_count, empty.number_count, empty.conversation_count) == (0, 0, 0)
    # Sorting by a count works.
    assert su_client.get(url(Company, "changelist"), {"o": "-4"}).status_code == 200


def test_user_admin_shows_company_and_role(su_client, admin_user):
    response = su_client.get(url(User, "changelist"))
    html = response.content.decode()
    assert "Acme" in html and "Admin" in html
    form = su_client.get(url(admin_user, "change", admin_user.pk)).context["adminform"].form
    assert {"company", "role"} <= set(form.fields)


def test_user_admin_add_requires_a_company(su_client, company):
    add_url = url(User, "add")
    data = {
        "username": "dave",
        "usable_password": "true",
        "password1": "A-long-pass-phrase-9",
        "password2": "A-long-pass-phrase-9",
        "role": Role.AGENT,
    }
    response = su_client.post(add_url, data)
    assert response.status_code == 200
    assert "company" in response.context["adminform"].form.errors
    assert not User.objects.filter(username="dave").exists()

    response = su_client.post(add_url, {**data, "company": str(company.pk)})
    assert response.status_code == 302
    dave = User.objects.get(username="dave")
    assert (dave.company, dave.role, dave.check_password("A-long-pass-phrase-9")) == (
        company,
        Role.AGENT,
        True,
    )


def test_api_token_admin_hides_the_hash_and_cannot_add(su_client, admin_user):
    token, raw = ApiToken.issue(admin_user, "ci")
    assert su_client.get(url(ApiToken, "add")).status_code == 403
    for page in [url(ApiToken, "changelist"), url(token, "change", token.pk)]:
        html = su_client.get(page).content.decode()
        assert token.key_hint in html
        assert token.key_hash not in html
        assert raw not in html
    form = su_client.get(url(token, "change", token.pk)).context["adminform"].form
    assert set(form.fields) == {"name"}

    data = {"name": "renamed"}
    assert su_client.post(url(token, "change", token.pk), data).status_code == 302
    token.refresh_from_db()
    assert token.name == "renamed"
    assert ApiToken.authenticate(raw) == admin_user


# ---------------------------------------------------------------- deleting


def number_with_everything(company):
    number = WhatsAppNumberFactory(company=company)
    bot = BotFactory(number=number)
    BotRuleFactory(bot=bot)
    broadcast = BroadcastFactory(number=number)
    BroadcastRecipientFactory(broadcast=broadcast)
    WhatsAppSessionFactory(number=number)
    conversation = ConversationFactory(company=company, source=number)
    MessageFactory.create_batch(3, conversation=conversation, bot=bot)
    return number


def rows_of(number):
    return {
        "bots": Bot.objects.filter(number=number).count(),
        "rules": BotRule.objects.filter(bot__number=number).count(),
        "broadcasts": Broadcast.objects.filter(number=number).count(),
        "recipients": BroadcastRecipient.objects.filter(broadcast__number=number).count(),
        "sessions": WhatsAppSession.objects.filter(number=number).count(),
        "conversations": Conversation.objects.of_source(number).filter().count(),
        "messages": Message.objects.filter(
            conversation__platform="whatsapp", conversation__source_id=number.pk
        ).count(),
    }


EVERYTHING = {
    "bots": 1,
    "rules": 1,
    "broadcasts": 1,
    "recipients": 1,
    "sessions": 1,
    "conversations": 1,
    "messages": 3,
}


def test_deleting_a_number_deletes_its_tree_and_nothing_else(su_client, company):
    doomed, kept = number_with_everything(company), number_with_everything(company)
    # A message of the kept number that names the doomed number's bot: it stays, unlinked.
    crossing = MessageFactory(
        conversation=Conversation.objects.of_source(kept).get(),
        bot=Bot.objects.get(number=doomed),
    )
    delete_url = url(doomed, "delete", doomed.pk)

    response = su_client.get(delete_url)
    assert response.status_code == 200
    assert dict(response.context["model_count"]) == {
        "WhatsApp numbers": 1,
        "bots": 1,
        "bot rules": 1,
        "broadcasts": 1,
        "broadcast recipients": 1,
        "WhatsApp sessions": 1,
        "conversations": 1,
        "messages": 3,
    }
    assert "Messages: 3" in response.content.decode()

    with CaptureQueriesContext(connection) as queries:
        response = su_client.post(delete_url, {"post": "yes"})
    assert response.status_code == 302
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert deletes == [
        f'DELETE FROM "channels_integrations_whatsappnumber" WHERE '
        f'"channels_integrations_whatsappnumber"."id" = {doomed.pk}'
    ]
    assert not WhatsAppNumber.objects.filter(pk=doomed.pk).exists()
    assert rows_of(doomed) == dict.fromkeys(EVERYTHING, 0)
    assert rows_of(kept) == {**EVERYTHING, "messages": 4}
    crossing.refresh_from_db()
    assert crossing.bot_id is None


def test_delete_confirmation_queries_do_not_grow_with_rows(su_client, company):
    number = number_with_everything(company)
    delete_url = url(number, "delete", number.pk)
    with CaptureQueriesContext(connection) as few:
        assert su_client.get(delete_url).status_code == 200
    conversation = Conversation.objects.of_source(number).get()
    MessageFactory.create_batch(20, conversation=conversation)
    with CaptureQueriesContext(connection) as many:
        response = su_client.get(delete_url)
    assert len(many) == len(few)
    # Messages are counted, never loaded.
    touching_messages = [q["sql"] for q in many if '"messaging_message"' in q["sql"]]
    assert touching_messages
    assert all(sql.startswith("SELECT COUNT(*)") for sql in touching_messages)
    assert dict(response.context["model_count"])["messages"] == 23


def test_deleting_companies_with_the_bulk_action(su_client, company, other_company, admin_user):
    number_with_everything(company)
    TelegramAccountFactory(company=company)
    EmailAccountFactory(company=company)
    TeamChatFactory(company=company)
    kept = number_with_everything(other_company)
    UserFactory(company=other_company)
    changelist = url(Company, "changelist")
    data = {"action": "delete_selected", "_selected_action": [str(company.pk)]}

    response = su_client.post(changelist, data)
    assert response.status_code == 200  # the confirmation
    counts = dict(response.context["model_count"])
    assert counts["companies"] == 1
    assert counts["users"] == 1
    assert counts["conversations"] == 1
    assert counts["messages"] == 3

    response = su_client.post(changelist, {**data, "post": "yes"})
    assert response.status_code == 302
    assert not Company.objects.filter(pk=company.pk).exists()
    assert not User.objects.filter(company_id=company.pk).exists()
    assert not Conversation.objects.filter(company_id=company.pk).exists()
    assert not Message.objects.filter(conversation__company_id=company.pk).exists()
    assert not TelegramAccount.objects.filter(company_id=company.pk).exists()
    assert not TeamChat.objects.filter(company_id=company.pk).exists()
    assert rows_of(kept) == EVERYTHING
    assert User.objects.filter(company=other_company).count() == 1


@pytest.mark.parametrize(
    "factory", [TelegramAccountFactory, EmailAccountFactory], ids=["telegram", "email"]
)
def test_deleting_an_account_deletes_its_conversations(su_client, company, factory):
    account = factory(company=company)
    conversation = ConversationFactory(company=company, source=account)
    MessageFactory.create_batch(2, conversation=conversation)
    other = number_with_everything(company)

    response = su_client.post(url(account, "delete", account.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not type(account).objects.filter(pk=account.pk).exists()
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert rows_of(other) == EVERYTHING
