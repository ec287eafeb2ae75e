"""English, Russian and Ukrainian: every string a person reads in a template or in our own
JavaScript is marked, the committed catalogues (django and djangojs) hold a translation of every
marked string (none missing, none fuzzy) and their compiled .mo match them, pages and the
JavaScript catalogue follow the user's language, browser or own choice."""

import gettext
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from crm import python_text, script_text
from crm.template_text import scan, template_files, unmarked

from .factories import ClientFactory, UserFactory

BASE = Path(settings.BASE_DIR)
LANGUAGES = ("ru", "uk")
IGNORE = [".venv", "tests", "bench", "staticfiles", "var", "node_modules"]
DOMAINS = ("django", "djangojs")  # templates and Python; our own JavaScript (static/js)
JS_IGNORE = [*IGNORE, "static/vendor"]  # vendored libraries bring their own words


def _entries(po: Path) -> dict[str, dict]:
    """msgid -> {"strs": [...], "fuzzy": bool} of a .po file (the header left out)."""
    entries = {}
    for block in po.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip().splitlines()
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
        fields, current = {}, None
        for line in lines:
            match = re.match(r'(msgid|msgid_plural|msgstr(?:\[\d\])?) "(.*)"$', line)
            if match:
                current = match.group(1)
                fields[current] = match.group(2)
            elif line.startswith('"') and current:
                fields[current] += line[1:-1]
        if fields.get("msgid"):
            strs = [value for key, value in fields.items() if key.startswith("msgstr")]
            entries[fields["msgid"]] = {"strs": strs, "fuzzy": fuzzy}
    return entries


def test_every_template_string_is_marked_for_translation():
    found = [
        f"{path.relative_to(BASE)}:{line}: {kind} {text!r}"
        for path in template_files(BASE)
        for kind, line, text in unmarked(path)
    ]
    assert not found, "Mark these for translation ({% translate %}, {% blocktranslate %}):\n" + (
        "\n".join(found)
    )


def test_the_scanner_finds_unmarked_text_and_attributes():
    source = (
        '{% load i18n %}<h1>{% translate "Inbox" %}</h1><p>Hello {{ name }}</p>'
        '<input placeholder="Search…"><b>{{ n|yesno:"Yes,No" }}</b><i>·</i>'
        "{% blocktranslate %}Fine {{ x }}{% endblocktranslate %}"
    )
    kinds = [(kind, text) for kind, _line, text in scan(source)]
    assert kinds == [
        ("text", "Hello {{ name }}"),
        ("attribute", "placeholder='Search…'"),
        ("filter", '|yesno:"Yes,No"'),
    ]


def test_every_javascript_string_is_marked_for_translation():
    found = [
        f"static/js/{path.name}:{line}: {text!r}"
        for path in script_text.script_files(BASE)
        for line, text in script_text.unmarked(path)
    ]
    assert not found, "Mark these with gettext()/ngettext()/interpolate():\n" + "\n".join(found)


def test_every_python_message_is_marked_for_translation():
    found = [
        f"{path.relative_to(BASE)}:{line}: {text}"
        for path in python_text.python_files(BASE)
        for line, text in python_text.unmarked(path)
    ]
    assert not found, "Mark these with gettext / gettext_lazy (`_`):\n" + "\n".join(found)


def test_the_python_scanner_finds_unmarked_messages(tmp_path):
    module = tmp_path / "views.py"
    module.write_text(
        "def view(request, bot):\n"
        '    messages.success(request, f"Bot {bot} saved.")\n'
        '    messages.error(request, _("Bot %(bot)s failed.") % {"bot": bot})\n'
        '    raise ValidationError({"name": ["Give it a name."]})\n'
        '    raise serializers.ValidationError("invalid")\n'
        '    form.add_error("phone", "Not a phone number.")\n'
        '    return Response({"detail": "Nothing here."}, status=404)\n'
        'FIELD = forms.CharField(error_messages={"required": "Required."})\n',
        encoding="utf-8",
    )
    assert [line for line, _text in python_text.unmarked(module)] == [2, 4, 6, 7, 8]


def test_the_script_scanner_finds_unmarked_words(tmp_path):
    script = tmp_path / "x.js"
    script.write_text(
        'el.textContent = "last message just now";\n'
        "alert(`Delete “${name}” for everyone?`);\n"
        'const ok = gettext("Saved.");\n'
        'const n = ngettext("%(count)s file", "%(count)s files", count);\n'
        'console.warn("inbox: refresh failed", err);\n'
        'if (event.key === "Enter" && /"(\\d+)"/.test(x)) node.className = "btn btn-small";\n'
        'headers["Content-Type"] = "application/json"; q("li[data-id] .name");\n'
        'label = "Waiting for QR scan";\n',
        encoding="utf-8",
    )
    assert script_text.unmarked(script) == [
        (1, "last message just now"),
        (2, "Delete “ ” for everyone?"),
        (8, "Waiting for QR scan"),
    ]


@pytest.fixture(scope="module")
def fresh_catalogues(tmp_path_factory):
    """makemessages run now in a copy of the sources and locale/: what the catalogues would
    hold today. A copy, because makemessages writes a file's strings into the locale/ folder
    next to it (the project's own one when run in the project), whatever LOCALE_PATHS says."""
    import os

    from django.test import override_settings

    tree = tmp_path_factory.mktemp("sources")
    for entry in BASE.iterdir():
        if entry.name.startswith(".") or entry.name in IGNORE:
            continue
        if entry.is_dir():
            shutil.copytree(entry, tree / entry.name, ignore=shutil.ignore_patterns("*.pyc"))
        else:
            shutil.copy2(entry, tree / entry.name)
    copy = tree / "locale"
    with override_settings(LOCALE_PATHS=[copy]):
        cwd = Path.cwd()
        try:
            os.chdir(tree)
            for domain, ignore in (("django", IGNORE), ("djangojs", JS_IGNORE)):
                call_command(
                    "makemessages",
                    domain=domain,
                    locale=list(LANGUAGES),
                    ignore_patterns=ignore,
                    no_obsolete=True,
                    verbosity=0,
                )
        finally:
            os.chdir(cwd)
    return copy


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalogue_translates_every_marked_string(language, domain, fresh_catalogues):
    committed = _entries(BASE / "locale" / language / "LC_MESSAGES" / f"{domain}.po")
    fresh = _entries(fresh_catalogues / language / "LC_MESSAGES" / f"{domain}.po")
    new = sorted(set(fresh) - set(committed))
    assert not new, (
        f"{len(new)} not in locale/{language}/LC_MESSAGES/{domain}.po "
        "(run `make messages` and translate):\n" + "\n".join(new)
    )
    untranslated = sorted(
        msgid for msgid, entry in fresh.items() if entry["fuzzy"] or not all(entry["strs"])
    )
    assert not untranslated, (
        f"{len(untranslated)} missing or fuzzy in locale/{language}/LC_MESSAGES/{domain}.po:\n"
        + "\n".join(untranslated)
    )


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_matches_the_po(language, domain, tmp_path):
    folder = BASE / "locale" / language / "LC_MESSAGES"
    compiled = tmp_path / f"{domain}.mo"
    subprocess.run(
        ["msgfmt", "--check", "-o", str(compiled), str(folder / f"{domain}.po")], check=True
    )  # noqa: S603,S607
    with open(folder / f"{domain}.mo", "rb") as committed, open(compiled, "rb") as fresh:
        assert (
            gettext.GNUTranslations(committed)._catalog == gettext.GNUTranslations(fresh)._catalog
        ), f"locale/{language}/LC_MESSAGES/{domain}.mo is stale: run `make messages`"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("en", "Could not reach the server"),
        ("ru", "Сервер недоступен"),
        ("uk", "Сервер недоступний"),
    ],
)
def test_the_javascript_catalogue_speaks_the_users_language(client, company, language, words):
    client.force_login(UserFactory(company=company, language=language))
    page = client.get(reverse("clients"))
    html = page.content.decode()
    catalogue_url = reverse("javascript-catalog")
    # Our own origin, loaded before our scripts, and the CSP admits no inline script.
    assert html.index(f'<script src="{catalogue_url}" defer>') < html.index("js/page.js")
    policy = page["Content-Security-Policy"]
    script_src = next(part for part in policy.split(";") if part.strip().startswith("script-src"))
    assert script_src.split()[1:] == ["'self'"]
    catalogue = client.get(catalogue_url)
    assert catalogue.status_code == 200
    assert catalogue["Content-Type"].startswith("text/javascript")
    body = catalogue.content.decode()
    assert "interpolate" in body and "ngettext" in body
    if language != "en":
        assert json.dumps(words)[1:-1] in body  # the catalogue is JSON inside the script


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "inbox", "clients"),
    [
        ("en", "Inbox", "5 clients"),
        ("ru", "Входящие", "5 клиентов"),
        ("uk", "Вхідні", "5 клієнтів"),
    ],
)
def test_pages_follow_the_users_own_language(client, company, language, inbox, clients):
    user = UserFactory(company=company, language=language)
    ClientFactory.create_batch(5, company=company)
    client.force_login(user)
    page = client.get(reverse("clients")).content.decode()
    assert f'<html lang="{language}">' in page
    assert inbox in page
    assert clients in page


@pytest.mark.django_db
def test_plural_forms_follow_the_language(client, company):
    user = UserFactory(company=company, language="ru")
    client.force_login(user)
    ClientFactory.create_batch(2, company=company)
    assert "2 клиента" in client.get(reverse("clients")).content.decode()
    ClientFactory.create_batch(19, company=company)
    assert "21 клиент" in client.get(reverse("clients")).content.decode()


@pytest.mark.django_db
def test_the_browser_language_is_used_until_the_user_chooses(client, company):
    login = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="uk,en;q=0.5").content.decode()
    assert "Увійти" in login

    user = UserFactory(company=company)
    client.force_login(user)
    assert "Настройки" in client.get(reverse("profile"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    response = client.post(reverse("profile"), {"language": "uk"}, HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.language == "uk"
    page = client.get(reverse("profile"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Налаштування" in page and "Профіль збережено." in page


@pytest.mark.django_db
def test_a_language_we_do_not_offer_is_refused_naming_the_field(client, company):
    user = UserFactory(company=company)
    client.force_login(user)
    response = client.post(reverse("profile"), {"language": "xx"})
    assert response.status_code == 200
    assert "xx" in response.content.decode() or "Select a valid choice" in response.content.decode()
    user.refresh_from_db()
    assert user.language == ""


@pytest.mark.django_db
def test_dates_are_localised(client, company):
    user = UserFactory(company=company, language="ru")
    found = ClientFactory(company=company)
    client.force_login(user)
    page = client.get(reverse("client_detail", args=[found.pk])).content.decode()
    months = ("января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа",
              "сентября", "октября", "ноября", "декабря")  # fmt: skip
    assert any(month in page for month in months)


def test_stored_connection_errors_reach_the_reader_in_their_language(company, admin_user):
    """Connections store their errors in the server's language (English); a reader in Russian
    gets a sentence in Russian (the English kept as the detail), on the page and in the bell."""
    from django.utils import translation

    from crm.templatetags.error_tags import explain
    from notifications.models import Kind, Notification
    from notifications.payloads import notification_payload

    login = "IMAP login failed: the server refused the username or password."
    unreachable = "Could not connect to the IMAP server at mail.example.com:993."
    quarantine = "Some mails could not be imported and wait in quarantine."
    odd = "The mailbox answered something we have no words for."
    with translation.override("en"):
        assert explain(odd) == (odd, "")
        assert explain(quarantine) == (quarantine, "")
    with translation.override("ru"):
        sentence, detail = explain(login)
        assert "пароль" in sentence and detail == login
        sentence, detail = explain(unreachable)
        assert "сервер" in sentence.lower() and detail == unreachable
        assert explain(quarantine) == (
            "Некоторые письма не удалось импортировать, они ждут в карантине.",
            "",
        )
        sentence, detail = explain(odd)
        assert "Подключение" in sentence and detail == odd
    failed = Notification.objects.create(
        company=company, user=admin_user, kind=Kind.CONNECTION_FAILED, subject="a@b.c", body=login
    )
    mention = Notification.objects.create(
        company=company, user=admin_user, kind=Kind.MENTIONED, subject="x", body="login failed?"
    )
    with translation.override("uk"):
        assert "пароль" in str(notification_payload(failed)["body"])
        assert failed.body_words != login
        # A colleague's words are never "explained": only connections' errors are.
        assert str(notification_payload(mention)["body"]) == "login failed?"
