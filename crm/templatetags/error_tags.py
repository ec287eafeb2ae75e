"""`{% error_text value %}`: an error as a person reads it. Technical text (a Go dial error,
"gaierror", an exception's name) becomes a sentence saying what happened and what to do,
with the original folded in a <details> below; a sentence is shown as it is."""

import re

from django import template
from django.template.loader import render_to_string
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext as _

register = template.Library()

NETWORK = re.compile(
    r"gaierror|name or service not known|no such host|dial tcp|failed to dial|"
    r"IncompleteReadError|connection refused|ConnectionRefused|ConnectionReset|timed out|"
    r"TimeoutError|ConnectError|network is unreachable|temporary failure in name resolution",
    re.I,
)
LOGIN = re.compile(
    r"AUTHENTICATIONFAILED|authentication failed|invalid credentials|\b401\b|login failed|"
    r"refused the (?:username|login)",
    re.I,
)
# Our own stored sentences about reaching a server (channels' error_words): no host of that
# name, a refused or silent port, a failed TLS handshake.
UNREACHABLE = re.compile(
    r"was not found|could not connect|TLS handshake|The connection to \S+ failed|"
    r"private or local address",
    re.I,
)
# Looks like a program's words, not a person's: an exception's name, a traceback, a long
# unbroken token, or a Go/Python error prefix.
TECHNICAL = re.compile(
    r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+(?:Error|Exception)\b|Traceback|\S{45,}|\berrno\b|\w+\.\w+\.\w+",
)


def explain(raw: str) -> tuple[str, str]:
    """(sentence, detail): the detail is empty when the text already is a sentence."""
    raw = (raw or "").strip()
    if not raw:
        return "", ""
    if NETWORK.search(raw):
        return (
            _(
                "Could not reach the service over the network. Check the server name and this "
                "server's internet connection; Switchboard tries again by itself."
            ),
            raw,
        )
    if LOGIN.search(raw):
        return (
            _("The service refused the login. Check the username and password in the settings."),
            raw,
        )
    if UNREACHABLE.search(raw):
        return (
            _(
                "The server could not be reached. Check its name and port in the settings; "
                "Switchboard tries again by itself."
            ),
            raw,
        )
    if TECHNICAL.search(raw):
        return (
            _(
                "Something went wrong with this connection. Try again; if it keeps failing, the "
                "details below help your administrator."
            ),
            raw,
        )
    # Stored sentences are written in the server's language (English); one we have words for
    # is shown in the reader's, any other keeps the English as its detail.
    translated = gettext(raw)
    if translated != raw or (get_language() or "en").startswith("en"):
        return translated, ""
    return (
        _("The connection reported a problem (the details below are in English)."),
        raw,
    )


@register.simple_tag
def error_text(raw, limit=300):
    sentence, detail = explain(str(raw or ""))
    if not sentence:
        return "—"
    return render_to_string(
        "includes/error_text.html",
        {"sentence": sentence if detail else sentence[: int(limit)], "detail": detail},
    )
