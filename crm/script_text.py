"""Finds words a person would read in our own JavaScript (static/js, not vendored libraries)
that are not given to gettext()/ngettext()/pgettext() (tests/test_i18n.py).

A small tokenizer: comments, regular-expression literals and string literals (quotes and
template literals, their `${...}` parts left out). A literal counts as readable when it looks
like words for a person: it starts with a capital letter and has a lowercase one, or it is
several words that end like a sentence, or it is assigned to `textContent`/`title` or passed
to alert()/confirm(). Technical literals are known by their shape (selectors, headers, key
names, class names) or listed in TECHNICAL.
"""

import re
from collections.abc import Iterator
from pathlib import Path

MARKERS = ("gettext", "ngettext", "pgettext", "npgettext")
# Arguments of these calls are for developers (the console) or are never shown.
SILENT = ("console.", "new Error", "Error(")
# Capitalised literals that are names, not words: keys, headers, DOM names.
TECHNICAL = {
    "Enter",
    "Escape",
    "Tab",
    "ArrowDown",
    "ArrowUp",
    "Files",
    "Accept",
    "Notification",
}
REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}
SINKS = re.compile(r"(?:\.textContent|\.title|\.placeholder)\s*=\s*$|\b(?:alert|confirm)\(\s*$")


def script_files(base: Path) -> list[Path]:
    return sorted((base / "static" / "js").glob("*.js"))


def literals(source: str) -> Iterator[tuple[int, int, str]]:
    """(start offset, line, text) of every string literal; template literals without their
    `${...}` parts."""
    i, n, previous = 0, len(source), ""
    while i < n:
        char = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i)
            i = n if i < 0 else i
            continue
        if source.startswith("/*", i):
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if char == "/" and (previous in REGEX_BEFORE or previous.endswith("return")):
            j, in_class = i + 1, False
            while j < n and (in_class or source[j] != "/"):
                if source[j] == "\\":
                    j += 1
                elif source[j] == "[":
                    in_class = True
                elif source[j] == "]":
                    in_class = False
                j += 1
            i, previous = j + 1, "regex"
            continue
        if char in "'\"`":
            j, text, depth = i + 1, [], 0
            while j < n:
                c = source[j]
                if c == "\\":
                    text.append(source[j : j + 2])
                    j += 2
                    continue
                if char == "`" and source.startswith("${", j):
                    depth, j = 1, j + 2
                    while j < n and depth:
                        depth += {"{": 1, "}": -1}.get(source[j], 0)
                        j += 1
                    text.append(" ")
                    continue
                if c == char:
                    break
                text.append(c)
                j += 1
            yield i, source.count("\n", 0, i) + 1, "".join(text)
            i, previous = j + 1, "string"
            continue
        if not char.isspace():
            previous = (previous + char)[-6:] if char.isalnum() or char == "_" else char
        i += 1


def _context(source: str, start: int) -> str:
    """The code just before a literal, on its statement (for the marker and sink checks)."""
    return source[max(0, start - 200) : start]


def _marked(before: str) -> bool:
    call = re.search(r"\b(" + "|".join(MARKERS) + r")\(\s*$", before)
    strings = r"""(?:\s*(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*,)+\s*$"""
    return call is not None or re.search(r"\bn?p?gettext\(" + strings, before) is not None


def readable(text: str) -> bool:
    words = text.strip()
    if not words or words in TECHNICAL:
        return False
    if re.fullmatch(r"[\w-]+(?:\s+[\w-]+)*", words) and "-" in words and not words[0].isupper():
        return False  # class names
    if re.fullmatch(r"[A-Z][A-Za-z]*(?:-[A-Z][A-Za-z]*)+", words):
        return False  # header names
    if re.search(r"[\[\]#=>{}]|^\.|/\w", words):
        return False  # selectors, markup, URLs
    if re.match(r"[A-Z][a-z]", words) or re.search(r"%\(\w+\)s\s*\w", words):
        return True  # a capitalised word, or words around a placeholder
    return bool(re.search(r"[a-z]{2,}\s+[a-z]{2,}.*[.?!…:]$", words))


def unmarked(path: Path) -> list[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    found = []
    for start, line, text in literals(source):
        before = _context(source, start)
        statement = before.rsplit(";", 1)[-1]
        if _marked(before) or any(marker in statement for marker in SILENT):
            continue
        if readable(text) or (
            text.strip() and SINKS.search(before) and re.search("[A-Za-z]", text)
        ):
            found.append((line, text))
    return found
