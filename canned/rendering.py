"""Variables in a canned reply's text: `{{client.first_name}}` and friends.

A reply is plain text (channels send text; pages escape it when they show it), so rendering
is substitution of known names only: no template language, nothing evaluated. A name we do
not know is refused when the reply is saved (`unknown_variables`), never half-filled later.
"""

import re

from django.utils.translation import gettext_lazy as _

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")

# name -> (description, how to read it from the context)
VARIABLES = {
    "client.name": (_("the client's name"), lambda c: c["client"].name if c["client"] else ""),
    "client.first_name": (
        _("the client's first name"),
        lambda c: (c["client"].name.split() or [""])[0] if c["client"] else "",
    ),
    "client.phone": (
        _("the client's phone"),
        lambda c: str(c["client"].phone or "") if c["client"] else "",
    ),
    "client.email": (_("the client's email"), lambda c: c["client"].email if c["client"] else ""),
    "agent.name": (_("your name"), lambda c: c["agent"].display_name if c["agent"] else ""),
    "agent.first_name": (
        _("your first name"),
        lambda c: (c["agent"].first_name or c["agent"].display_name) if c["agent"] else "",
    ),
    "company.name": (_("your company's name"), lambda c: c["company"].name),
    "conversation.subject": (
        _("the conversation's subject"),
        lambda c: c["conversation"].subject if c["conversation"] else "",
    ),
}


def braces(name: str) -> str:
    """`name` as it is written in a reply: {{client.name}}."""
    return "{{" + name + "}}"


def known_variables() -> str:
    return ", ".join(braces(name) for name in VARIABLES)


def unknown_variables(text: str) -> list[str]:
    """The variable names in `text` we cannot fill, in order of appearance."""
    unknown = []
    for name in VARIABLE.findall(text or ""):
        if name not in VARIABLES and name not in unknown:
            unknown.append(name)
    return unknown


def render(text: str, *, company, agent=None, conversation=None) -> str:
    """`text` with every known variable filled for this conversation and agent."""
    context = {
        "company": company,
        "agent": agent,
        "conversation": conversation,
        "client": getattr(conversation, "client", None),
    }

    def fill(match):
        known = VARIABLES.get(match.group(1))
        return str(known[1](context) or "") if known else match.group(0)

    return VARIABLE.sub(fill, text or "")
