"""Finds what a person reads in our templates and is not marked for translation: text between
tags (outside {% translate %} / {% blocktranslate %}), and the words of title, placeholder,
aria-label and alt attributes. Used by tests/test_i18n.py; `unmarked(path)` lists what is
missing, each with its line."""

import re
from pathlib import Path

TOKEN = re.compile(
    r"(?P<comment>\{#.*?#\}|<!--.*?-->)"
    r"|(?P<tag>\{%.*?%\})"
    r"|(?P<var>\{\{.*?\}\})"
    r"|(?P<html><(?:[^>{]|\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}|\{)*>)",
    re.S,
)
LETTERS = re.compile(r"[^\W\d_]", re.U)
ATTRIBUTE = re.compile(
    r"""\b(title|placeholder|aria-label|alt)="""
    r"""(?:"((?:\{%.*?%\}|\{\{.*?\}\}|[^"])*)"|'((?:\{%.*?%\}|\{\{.*?\}\}|[^'])*)')""",
    re.S,
)
RAW_ELEMENTS = ("script", "style", "code", "pre", "kbd")  # kbd: key names, not words
# Words given to filters as plain strings ({{ x|yesno:"Yes,No" }}): they need _("...").
FILTER_WORDS = re.compile(r"""\|(yesno|default|default_if_none):(["'])([^"']*?[^\W\d_][^"']*?)\2""")
# Not words to translate: the product's name, units and the like.
ALLOWED = {"Switchboard", "S", "ID", "API", "URL", "IMAP", "SMTP", "JSON", "UTC", "OK", "@"}


def _letters(text: str) -> bool:
    words = [word for word in re.split(r"[\s·—→←:()]+", text) if word and word not in ALLOWED]
    return bool(LETTERS.search(" ".join(words)))


def scan(source: str):
    """(kind, line, text) of every unmarked piece of `source`; kind "text" or "attribute"."""
    found = []
    position = 0
    skip_until = None  # a closing tag/element whose content is not ours to check
    run_start, run = None, []

    def flush():
        nonlocal run_start, run
        text = "".join(part for kind, part in run if kind == "text")
        if run and _letters(text):
            found.append(
                ("text", source.count("\n", 0, run_start) + 1, "".join(p for _k, p in run).strip())
            )
        run_start, run = None, []

    for match in TOKEN.finditer(source):
        text = source[position : match.start()]
        position = match.end()
        if skip_until is None and text:
            if run_start is None:
                run_start = match.start() - len(text)
            run.append(("text", text))
        token = match.group(0)
        if skip_until is not None:
            if re.fullmatch(skip_until, token, re.S | re.I):
                skip_until = None
            continue
        if match.group("var") or match.group("tag"):
            for literal in FILTER_WORDS.finditer(token):
                line = source.count("\n", 0, match.start()) + 1
                found.append(("filter", line, literal.group(0)))
        if match.group("var"):
            if run_start is None:
                run_start = match.start()
            run.append(("var", token))
            continue
        flush()
        if match.group("tag"):
            name = token[2:-2].split()[0] if token[2:-2].split() else ""
            if name in ("blocktranslate", "blocktrans"):
                skip_until = r"\{%\s*endblocktrans(late)?\s*%\}"
            elif name == "comment":
                skip_until = r"\{%\s*endcomment\s*%\}"
            elif name == "verbatim":
                skip_until = r"\{%\s*endverbatim\s*%\}"
        elif match.group("html"):
            element = re.match(r"<\s*([a-zA-Z0-9-]+)", token)
            if element and element.group(1).lower() in RAW_ELEMENTS:
                skip_until = rf"</\s*{element.group(1)}\s*>"
            for attribute in ATTRIBUTE.finditer(token):
                value = attribute.group(2) if attribute.group(2) is not None else attribute.group(3)
                plain = re.sub(
                    r"\{%\s*blocktranslate.*?endblocktranslate\s*%\}|\{%.*?%\}|\{\{.*?\}\}",
                    "",
                    value,
                    flags=re.S,
                )
                if _letters(plain):
                    line = source.count("\n", 0, match.start()) + 1
                    found.append(("attribute", line, f"{attribute.group(1)}={value!r}"))
    if skip_until is None:
        text = source[position:]
        if text:
            run_start = run_start if run_start is not None else position
            run.append(("text", text))
        flush()
    return found


def unmarked(path: Path):
    return scan(path.read_text(encoding="utf-8"))


def template_files(base: Path):
    """Our templates: templates/ and every channel folder's templates/."""
    yield from sorted((base / "templates").rglob("*.html"))
    yield from sorted((base / "channels_integrations").glob("*/templates/**/*.html"))
