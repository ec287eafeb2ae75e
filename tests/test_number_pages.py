"""Settings → WhatsApp pages: the list with its counts, add / edit through the service, secrets
never rendered, deactivate / reactivate, and the delete page that tells the truth beforehand and
never leaves half a number behind (on the real PostgreSQL, a real failure injected by a trigger).
"""

import os
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from channels_integrations import selectors
from channels_integrations.models import (
    Bot,
    BotRule,
    Broadcast,
    BroadcastRecipient,
    WhatsAppNumber,
    WhatsAppSession,
)
from channels_integrations.whatsapp.numbers import deletion_preview
from crm.models import Client
from messaging.models import Attachment, Conversation, Message

from .factories import (
    BotFactory,
    BroadcastFactory,
    ConversationFactory,
    WhatsAppNumberFactory,
)
from .live import *  # noqa: F403  (fixtures: daphne_server, browser; helpers log_in, wait_live)
from .test_cascades import _counts, _number_with_everything

pytestmark = pytest.mark.django_db

SECRETS = {
    "cloud_access_token": "EAAG-typed-in-access-token",
    "cloud_app_secret": "typed-in-app-secret",
    "cloud_verify_token": "typed-in-verify-token",
}
FACTORY_SECRETS = ("EAAG-secret-access-token", "app-secret-value", "verify-token-value")
DUPLICATE = "Another WhatsApp number in your company has this phone."


@pytest.fixture
def admin(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def agent(client, agent_user):
    client.force_login(agent_user)
    return client


def _form(**overrides):
    data = {
        "phone": "+49 170 1234 5678",
        "display_name": "Sales line",
        "provider": "cloud",
        "cloud_phone_number_id": "106540352242922",
        "cloud_business_account_id": "102290129340398",
        "cloud_access_token": "",
        "cloud_app_secret": "",
        "cloud_verify_token": "",
    }
    data.update(overrides)
    return data


def _table_totals():
    """Rows in every table a number's deletion touches (or must not touch)."""
    return {
        model.__name__: model.objects.count()
        for model in (
            WhatsAppNumber,
            WhatsAppSession,
            Bot,
            BotRule,
            Broadcast,
            BroadcastRecipient,
            Conversation,
            Message,
            Attachment,
            Client,
        )
    }


def _shown_counts(content: str) -> dict[str, int]:
    """The counts the delete page shows, by name (data-count="...")."""
    return {
        name: int(value.replace(",", ""))
        for name, value in re.findall(r'data-count="(\w+)">([\d,]+)<', content)
    }


# ---------------------------------------------------------------- the list


def _number_with_counts(company, bots=0, conversations=0, broadcasts=0, **kwargs):
    number = WhatsAppNumberFactory(company=company, **kwargs)
    BotFactory.create_batch(bots, number=number)
    for _ in range(conversations):
        ConversationFactory(company=company, source=number)
    BroadcastFactory.create_batch(broadcasts, number=number)
    return number


def test_list_shows_each_number_with_its_counts(admin, company, other_company):
    busy = _number_with_counts(
        company, bots=2, conversations=3, broadcasts=1, display_name="Busy line"
    )
    quiet = _number_with_counts(company, display_name="Quiet line", is_active=False)
    _number_with_counts(company, display_name="Going away", status=WhatsAppNumber.Status.DELETING)
    _number_with_counts(other_company, display_name="Their line")

    response = admin.get(reverse("numbers"))
    assert response.status_code == 200
    rows = {n.pk: n for n in response.context["numbers"]}
    assert set(rows) == {busy.pk, quiet.pk}
    assert (rows[busy.pk].bot_count, rows[busy.pk].conversation_count) == (2, 3)
    assert rows[busy.pk].broadcast_count == 1
    assert (rows[quiet.pk].bot_count, rows[quiet.pk].conversation_count) == (0, 0)
    assert rows[quiet.pk].broadcast_count == 0

    content = response.content.decode()
    assert "Busy line" in content and "Quiet line" in content
    assert "Going away" not in content and "Their line" not in content
    row = re.search(rf'<tr id="number-{busy.pk}".*?</tr>', content, re.S).group(0)
    assert str(busy.phone) in row and "Cloud API" in row and "Busy line" in row
    assert re.findall(r'<td class="num">(?:<a [^>]*>)?(\d+)(?:</a>)?</td>', row) == ["2", "3", "1"]
    assert f'href="{reverse("number_bots", args=[busy.pk])}"' in row
    assert f'href="{reverse("number_edit", args=[busy.pk])}"' in row
    assert f'action="{reverse("number_deactivate", args=[busy.pk])}"' in row
    assert f'href="{reverse("number_delete", args=[busy.pk])}"' in row
    quiet_row = re.search(rf'<tr id="number-{quiet.pk}".*?</tr>', content, re.S).group(0)
    assert f'action="{reverse("number_reactivate", args=[quiet.pk])}"' in quiet_row
    for secret in FACTORY_SECRETS:
        assert secret not in content
    assert "js/numbers.js" in content
    # The settings page links here.
    assert f'href="{reverse("numbers")}"' in admin.get(reverse("settings")).content.decode()


def test_the_counts_are_one_query_and_the_page_does_not_grow_with_numbers(
    admin, admin_user, company
):
    _number_with_counts(company, bots=1, conversations=1, broadcasts=1)

    def page_queries():
        with CaptureQueriesContext(connection) as queries:
            assert admin.get(reverse("numbers")).status_code == 200
        return len(queries)

    few = page_queries()
    for _ in range(4):
        _number_with_counts(company, bots=2, conversations=3, broadcasts=2)
    assert page_queries() == few

    with CaptureQueriesContext(connection) as queries:
        numbers = list(selectors.whatsapp_numbers(admin_user))
        counts = [(n.bot_count, n.conversation_count, n.broadcast_count) for n in numbers]
        sessions = [getattr(n, "session", None) for n in numbers]
    assert len(queries) == 1
    assert sorted(counts) == [(1, 1, 1)] + [(2, 3, 2)] * 4
    assert sessions == [None] * 5


def test_live_refresh_answers_only_the_table(admin, company):
    number = WhatsAppNumberFactory(company=company)
    response = admin.get(reverse("numbers"), HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert f'data-number-id="{number.pk}"' in content
    assert "<html" not in content
    assert "HX-Request" in response["Vary"]


# ---------------------------------------------------------------- add and edit


def test_add_normalises_the_phone_to_e164_and_stores_the_secrets(admin, company):
    response = admin.post(reverse("number_create"), _form(**SECRETS))
    assert response.status_code == 302
    assert response["Location"] == reverse("numbers")
    number = WhatsAppNumber.objects.get()
    assert number.company == company
    assert str(number.phone) == "+4917012345678"
    assert number.provider == "cloud" and number.is_active
    assert number.cloud_phone_number_id == "106540352242922"
    assert number.cloud_access_token == SECRETS["cloud_access_token"]
    assert number.cloud_app_secret == SECRETS["cloud_app_secret"]
    assert number.cloud_verify_token == SECRETS["cloud_verify_token"]

    page = admin.get(response["Location"]).content.decode()
    assert "+4917012345678 added" in page
    edit = admin.get(reverse("number_edit", args=[number.pk])).content.decode()
    assert 'value="+4917012345678"' in edit
    for secret in SECRETS.values():
        assert secret not in page and secret not in edit
    assert "Leave blank to keep the stored value." in edit


def test_add_a_web_number_without_credentials(admin):
    response = admin.post(
        reverse("number_create"),
        _form(provider="web", cloud_phone_number_id="", cloud_business_account_id=""),
    )
    assert response.status_code == 302
    number = WhatsAppNumber.objects.get()
    assert number.provider == "web" and number.cloud_access_token is None


def test_invalid_phone_is_an_error_on_the_phone_field_and_secrets_are_not_echoed(admin):
    response = admin.post(reverse("number_create"), _form(phone="12345", **SECRETS))
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["phone"]
    content = response.content.decode()
    assert 'id="id_phone_error"' in content
    for secret in SECRETS.values():
        assert secret not in content  # not even the values just typed in
    assert not WhatsAppNumber.objects.exists()


def test_unknown_provider_is_a_field_error(admin):
    response = admin.post(reverse("number_create"), _form(provider="sms"))
    assert response.status_code == 200
    assert "provider" in response.context["form"].errors
    assert not WhatsAppNumber.objects.exists()


def test_duplicate_phone_in_the_company_is_an_error_on_the_phone_field(admin, company):
    WhatsAppNumberFactory(company=company, phone="+4917012345678")
    response = admin.post(reverse("number_create"), _form(phone="+49 (170) 1234-5678"))
    assert response.status_code == 200
    assert response.context["form"].errors == {"phone": [DUPLICATE]}
    assert DUPLICATE in response.content.decode()
    assert WhatsAppNumber.objects.count() == 1


def test_the_same_phone_in_another_company_is_fine(admin, company, other_company):
    WhatsAppNumberFactory(company=other_company, phone="+4917012345678")
    assert admin.post(reverse("number_create"), _form()).status_code == 302
    assert WhatsAppNumber.objects.filter(company=company, phone="+4917012345678").exists()


def test_edit_keeps_the_stored_secrets_when_left_blank(admin, company):
    number = WhatsAppNumberFactory(company=company, phone="+4917012345678")
    form = admin.get(reverse("number_edit", args=[number.pk])).content.decode()
    for secret in FACTORY_SECRETS:
        assert secret not in form
    assert 'value="106540352242922"' not in form  # the factory's number has no id yet

    response = admin.post(
        reverse("number_edit", args=[number.pk]),
        _form(phone="+44 20 7946 0958", display_name="Renamed"),
    )
    assert response.status_code == 302
    number = WhatsAppNumber.objects.get(pk=number.pk)
    assert number.display_name == "Renamed" and str(number.phone) == "+442079460958"
    assert (number.cloud_access_token, number.cloud_app_secret, number.cloud_verify_token) == (
        FACTORY_SECRETS
    )

    # A secret typed in replaces only that secret.
    admin.post(
        reverse("number_edit", args=[number.pk]),
        _form(phone="+442079460958", cloud_access_token="EAAG-rotated"),
    )
    number = WhatsAppNumber.objects.get(pk=number.pk)
    assert number.cloud_access_token == "EAAG-rotated"
    assert number.cloud_app_secret == "app-secret-value"


def test_edit_to_a_duplicate_phone_changes_nothing(admin, company):
    WhatsAppNumberFactory(company=company, phone="+4917012345678")
    number = WhatsAppNumberFactory(company=company, phone="+4917099999999", display_name="Keep")
    response = admin.post(
        reverse("number_edit", args=[number.pk]),
        _form(phone="+4917012345678", display_name="Changed", **SECRETS),
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"phone": [DUPLICATE]}
    content = response.content.decode()
    for secret in (*SECRETS.values(), *FACTORY_SECRETS):
        assert secret not in content
    number = WhatsAppNumber.objects.get(pk=number.pk)
    assert number.display_name == "Keep" and str(number.phone) == "+4917099999999"
    assert number.cloud_access_token == "EAAG-secret-access-token"


# ---------------------------------------------------------------- deactivate / reactivate


def test_deactivate_and_reactivate(admin, company):
    number = WhatsAppNumberFactory(company=company, status=WhatsAppNumber.Status.CONNECTED)
    WhatsAppSession.objects.create(number=number, status=WhatsAppSession.Status.CONNECTED)
    conversation = ConversationFactory(company=company, source=number)

    response = admin.post(reverse("number_deactivate", args=[number.pk]))
    assert response.status_code == 302 and response["Location"] == reverse("numbers")
    number.refresh_from_db()
    assert not number.is_active and number.status == "disconnected"
    assert WhatsAppSession.objects.get(number=number).status == "stopped"
    assert Conversation.objects.filter(pk=conversation.pk).exists()  # history stays
    page = admin.get(reverse("numbers")).content.decode()
    assert "deactivated" in page
    assert f'action="{reverse("number_reactivate", args=[number.pk])}"' in page

    assert admin.post(reverse("number_reactivate", args=[number.pk])).status_code == 302
    number.refresh_from_db()
    assert number.is_active
    assert "reactivated" in admin.get(reverse("numbers")).content.decode()


def test_deactivate_and_reactivate_need_post(admin, company):
    number = WhatsAppNumberFactory(company=company)
    assert admin.get(reverse("number_deactivate", args=[number.pk])).status_code == 405
    number.refresh_from_db()
    assert number.is_active


# ---------------------------------------------------------------- delete


def test_delete_page_shows_exactly_what_goes_with_the_number(admin, company):
    number = _number_with_everything(company=company)
    _number_with_everything(company=company)  # another number's rows are not counted
    preview = deletion_preview(number)
    response = admin.get(reverse("number_delete", args=[number.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert _shown_counts(content) == preview
    assert preview == {
        "bots": 2, "bot_rules": 2, "conversations": 2, "messages": 6, "attachments": 2, "broadcasts": 3,
        "broadcast_recipients": 3, "sessions": 1, "templates": 0, "total": 22,
    }  # fmt: skip
    assert "cannot be undone" in content
    assert f'action="{reverse("number_deactivate", args=[number.pk])}"' in content
    assert "Deactivate instead" in content
    assert 'name="confirm_phone"' in content
    for secret in FACTORY_SECRETS:
        assert secret not in content


def test_delete_page_says_a_big_number_goes_in_the_background(admin, company, settings):
    settings.NUMBER_DELETE_SYNC_LIMIT = 5
    number = _number_with_everything(company=company)
    content = admin.get(reverse("number_delete", args=[number.pk])).content.decode()
    assert "deleted in the background" in content


def test_a_wrong_confirmation_deletes_nothing(admin, company):
    number = _number_with_everything(company=company)
    before = _table_totals()
    for typed in ("", "+4917000000000", "yes"):
        response = admin.post(reverse("number_delete", args=[number.pk]), {"confirm_phone": typed})
        assert response.status_code == 200
        assert "confirm_phone" in response.context["form"].errors
    assert "That is not this number." in response.content.decode()
    assert _table_totals() == before
    assert WhatsAppNumber.objects.filter(pk=number.pk, status="disconnected").exists()


def test_confirmed_delete_removes_everything_and_touches_no_other_number(
    admin, company, other_company, django_capture_on_commit_callbacks
):
    number = _number_with_everything(company=company)
    other = _number_with_everything(company=company)
    theirs = _number_with_everything(company=other_company)
    preview = deletion_preview(number)
    before, before_other, before_theirs = _table_totals(), _counts(other.pk), _counts(theirs.pk)
    # Spaces and dashes in what is typed don't matter.
    typed = re.sub(r"(\d{3})(\d{4})$", r" \1-\2", str(number.phone))

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin.post(reverse("number_delete", args=[number.pk]), {"confirm_phone": typed})

    assert response.status_code == 302 and response["Location"] == reverse("numbers")
    assert len(callbacks) == 2  # number.deleted and the removal of stored files, after commit
    assert not WhatsAppNumber.objects.filter(pk=number.pk).exists()
    assert set(_counts(number.pk).values()) == {0}
    assert _counts(other.pk) == before_other and _counts(theirs.pk) == before_theirs
    after = _table_totals()
    gone = {
        "WhatsAppNumber": 1,
        "WhatsAppSession": preview["sessions"],
        "Bot": preview["bots"],
        "BotRule": preview["bot_rules"],
        "Broadcast": preview["broadcasts"],
        "BroadcastRecipient": preview["broadcast_recipients"],
        "Conversation": preview["conversations"],
        "Message": preview["messages"],
        "Attachment": preview["attachments"],
        "Client": 0,  # clients belong to the company, not to the number
    }
    assert {name: before[name] - after[name] for name in before} == gone
    page = admin.get(response["Location"]).content.decode()
    assert "and everything under it were deleted" in page
    assert f'data-number-id="{number.pk}"' not in page
    assert f'data-number-id="{other.pk}"' in page


def test_a_big_number_is_hidden_and_deleted_in_the_background(
    admin, company, settings, eager_celery, django_capture_on_commit_callbacks
):
    settings.NUMBER_DELETE_SYNC_LIMIT = 5
    number = _number_with_everything(company=company)
    other = _number_with_everything(company=company)
    before_other = _counts(other.pk)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin.post(
            reverse("number_delete", args=[number.pk]), {"confirm_phone": str(number.phone)}
        )
    assert response.status_code == 302 and response["Location"] == reverse("numbers")
    number.refresh_from_db()
    assert number.status == "deleting"
    assert WhatsAppSession.objects.get(number=number).status == "stopped"
    page = admin.get(response["Location"]).content.decode()
    assert "is being deleted in the background" in page
    assert f'data-number-id="{number.pk}"' not in page  # hidden at once
    assert str(number.phone) not in page.split('id="number-table"')[1]
    assert admin.get(reverse("number_delete", args=[number.pk])).status_code == 404
    assert admin.get(reverse("number_edit", args=[number.pk])).status_code == 404

    for callback in callbacks:  # the commit: the task is queued and (eagerly) runs
        callback()
    assert not WhatsAppNumber.objects.filter(pk=number.pk).exists()
    assert set(_counts(number.pk).values()) == {0}
    assert _counts(other.pk) == before_other


def test_a_database_failure_mid_delete_shows_the_error_and_deletes_nothing(
    admin, company, failing_message_delete, caplog
):
    number = _number_with_everything(company=company)
    before = _table_totals()
    response = admin.post(
        reverse("number_delete", args=[number.pk]), {"confirm_phone": str(number.phone)}
    )
    assert response.status_code == 503
    content = response.content.decode()
    assert 'id="delete-error"' in content
    assert "The number was not deleted." in content
    assert "The database refused the delete" in content and "nothing was deleted" in content
    assert _table_totals() == before  # every row still there
    assert _shown_counts(content)["messages"] == 6
    number.refresh_from_db()
    assert not number.is_active and number.status == "error"  # back, deactivated
    assert f"number={number.pk} deletion failed" in caplog.text
    # The list shows it again, with the error.
    page = admin.get(reverse("numbers")).content.decode()
    assert f'data-number-id="{number.pk}"' in page and "The database refused the delete" in page


# ---------------------------------------------------------------- who may do what


def test_agents_see_the_list_read_only_and_get_403_on_every_write(agent, company):
    number = _number_with_everything(company=company)
    content = agent.get(reverse("numbers")).content.decode()
    assert str(number.phone) in content and "read-only" in content
    assert reverse("number_edit", args=[number.pk]) not in content
    assert reverse("number_delete", args=[number.pk]) not in content
    assert reverse("number_create") not in content

    before = _table_totals()
    writes = [
        ("get", reverse("number_create"), {}),
        ("post", reverse("number_create"), _form()),
        ("get", reverse("number_edit", args=[number.pk]), {}),
        ("post", reverse("number_edit", args=[number.pk]), _form(display_name="Agent")),
        ("post", reverse("number_deactivate", args=[number.pk]), {}),
        ("post", reverse("number_reactivate", args=[number.pk]), {}),
        ("get", reverse("number_delete", args=[number.pk]), {}),
        ("post", reverse("number_delete", args=[number.pk]), {"confirm_phone": str(number.phone)}),
    ]
    for method, url, data in writes:
        assert getattr(agent, method)(url, data).status_code == 403, (method, url)
    assert _table_totals() == before
    number.refresh_from_db()
    assert number.is_active and number.display_name != "Agent"


def test_another_companys_number_is_404(admin, other_company):
    theirs = _number_with_everything(company=other_company)
    before = _table_totals()
    for name in ("number_edit", "number_delete"):
        assert admin.get(reverse(name, args=[theirs.pk])).status_code == 404
    for name, data in (
        ("number_edit", _form(display_name="Hijack")),
        ("number_deactivate", {}),
        ("number_reactivate", {}),
        ("number_delete", {"confirm_phone": str(theirs.phone)}),
    ):
        assert admin.post(reverse(name, args=[theirs.pk]), data).status_code == 404, name
    assert _table_totals() == before
    theirs.refresh_from_db()
    assert theirs.display_name != "Hijack" and theirs.is_active


# ---------------------------------------------------------------- live, in a real browser


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_list_follows_deletions_and_changes_without_a_reload(
    daphne_server,  # noqa: F405
    browser,  # noqa: F405
):
    from playwright.sync_api import expect

    from channels_integrations.whatsapp.numbers import (
        NumberDeletionFailed,
        run_number_deletion,
        set_number_active,
    )

    from .factories import CompanyFactory, UserFactory

    company = CompanyFactory(name="Acme Live")
    alice = UserFactory(company=company, username="alice-live", role="admin")
    going = WhatsAppNumberFactory(company=company, display_name="Going line")
    toggled = WhatsAppNumberFactory(company=company, display_name="Toggled line")
    failing = _number_with_everything(company=company)

    page = log_in(browser, daphne_server, alice)  # noqa: F405
    page.goto(daphne_server.url + reverse("numbers"))
    wait_live(page)  # noqa: F405
    page.evaluate("window.__noReload = true")
    row = 'tr[data-number-id="{}"]'.format

    # A background delete finished: the row goes, a notice says so.
    run_number_deletion(going.pk, actor_id=alice.pk)
    expect(page.locator(row(going.pk))).to_have_count(0)
    expect(page.locator("#number-notices")).to_contain_text(f"{going.phone} was deleted")

    # Deactivated elsewhere: the row refreshes (its button now reactivates).
    set_number_active(alice, toggled, False)
    expect(page.locator(row(toggled.pk))).to_contain_text("Reactivate")

    # A background delete failed: the error shows, in a notice and in the row.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_delete() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_message_delete BEFORE DELETE ON messaging_message
            FOR EACH ROW EXECUTE FUNCTION refuse_delete();
            """
        )
    try:
        with pytest.raises(NumberDeletionFailed):
            run_number_deletion(failing.pk, actor_id=alice.pk)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_message_delete ON messaging_message;"
                "DROP FUNCTION refuse_delete();"
            )
    expect(page.locator("#number-notices")).to_contain_text("was not deleted")
    expect(page.locator(row(failing.pk))).to_contain_text("The database refused the delete")
    expect(page.locator(row(failing.pk))).to_contain_text("Error")
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"

    folder = os.environ.get("SCREENSHOTS")  # keep pictures of the pages, as test_browser does
    if folder:
        page.screenshot(path=os.path.join(folder, "numbers.png"), full_page=True)
        page.goto(daphne_server.url + reverse("number_delete", args=[failing.pk]))
        page.screenshot(path=os.path.join(folder, "number_delete.png"), full_page=True)
        page.goto(daphne_server.url + reverse("number_edit", args=[failing.pk]))
        page.screenshot(path=os.path.join(folder, "number_edit.png"), full_page=True)
