"""PostgreSQL full-text search over message text, in Russian, Ukrainian and English.

The languages (PostgreSQL 15 on our machines, `\\dF`): `russian` exists and stems Cyrillic
words with the Russian Snowball stemmer and Latin words with the English one (its `asciiword`
maps to `english_stem`), so one configuration covers Russian and English. There is no
Ukrainian configuration (no Ukrainian stemmer or dictionary ships with PostgreSQL), so every
message is indexed twice, in one tsvector:

    to_tsvector('russian', body) || to_tsvector('simple', body)

`simple` keeps each word as written, lower-cased: Ukrainian words (and names, codes, numbers)
match as written, and as a prefix of a longer word ("Київ" finds "Київський"). No per-message
language detection: a message mixes languages often (a Ukrainian question about an English
product name), and a detector guessing wrong would hide it from inbox_search.

A query is split into words (letters and digits only, so no tsquery syntax ever reaches
PostgreSQL from the user); a message matches when it has every word, each either by its
Russian/English stem or as a prefix of a word as written.
"""

import json
import re

from django.db import connection
from django.db.models import BooleanField, CharField, F
from django.db.models.expressions import Expression
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# The indexed expression (migration inbox_search 0001); `{table}` is the messages' table or alias.
MESSAGE_VECTOR_SQL = (
    "(to_tsvector('russian'::regconfig, {table}.\"body\") "
    "|| to_tsvector('simple'::regconfig, {table}.\"body\"))"
)
MESSAGE_INDEX = "msg_body_fts_idx"


def message_index_sql() -> str:
    """The migration's index (inbox_search 0001): built without blocking writes."""
    vector = MESSAGE_VECTOR_SQL.format(table='"messaging_message"')
    return (
        f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{MESSAGE_INDEX}" '
        f'ON "messaging_message" USING gin ({vector})'
    )


MAX_WORDS = 8
MAX_WORD_LENGTH = 64
# ts_headline marks matches with two private-use characters (removed from the text first),
# so the HTML is made by escaping everything and then turning only those into <mark> tags.
_START, _STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
    f'StartSel="{_START}", StopSel="{_STOP}", MaxWords=18, MinWords=6, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)
_WORD = re.compile(r"[^\W_]+")


def words(query: str) -> list[str]:
    """The searchable words of a query: letters/digits runs, lower-cased, at most MAX_WORDS."""
    found = _WORD.findall((query or "").replace("\x00", " ").lower())
    return [word[:MAX_WORD_LENGTH] for word in found[:MAX_WORDS]]


def tsquery_sql(query: str) -> tuple[str, list] | None:
    """SQL (and its parameters) of the tsquery for `query`, or None when it has no word."""
    terms = words(query)
    if not terms:
        return None
    parts, params = [], []
    for word in terms:
        # The word is letters and digits only: `word:*` cannot be tsquery syntax.
        parts.append(
            "(plainto_tsquery('russian'::regconfig, %s) || to_tsquery('simple'::regconfig, %s))"
        )
        params += [word, f"{word}:*"]
    return "(" + " && ".join(parts) + ")", params


class _TextSearch(Expression):
    """SQL around the message's `body` column (Django names the column, so it works under
    any table alias, in subqueries too) and the query's words as parameters."""

    def __init__(self, template: str, params: list, output_field):
        super().__init__(output_field=output_field)
        self.body = F("body")
        self.template = template
        self.params = params

    def get_source_expressions(self):
        return [self.body]

    def set_source_expressions(self, exprs):
        (self.body,) = exprs

    def as_sql(self, compiler, connection):
        body_sql, body_params = compiler.compile(self.body)
        if body_params:  # a column: never parameters
            raise ValueError("unexpected parameters for the body column")
        return self.template.replace("{body}", body_sql), list(self.params)


def message_match(query: str) -> Expression | None:
    """A filter expression: the message's text matches `query` (uses the GIN index)."""
    tsquery = tsquery_sql(query)
    if tsquery is None:
        return None
    sql, params = tsquery
    vector = MESSAGE_VECTOR_SQL.replace('{table}."body"', "{body}")
    return _TextSearch(f"{vector} @@ {sql}", params, BooleanField())


def message_headline(query: str) -> Expression:
    """The message's text around the matches, matches between the two marker characters."""
    sql, params = tsquery_sql(query) or ("''::tsquery", [])
    return _TextSearch(
        f"ts_headline('russian'::regconfig, translate({{body}}, %s, ''), {sql}, %s)",
        [_START + _STOP, *params, HEADLINE_OPTIONS],
        CharField(),
    )


def headline_html(headline: str | None) -> SafeString:
    """The headline as safe HTML: its text escaped, the matches in <mark> (nothing else)."""
    text = escape(headline or "")
    return mark_safe(text.replace(_START, "<mark>").replace(_STOP, "</mark>"))  # noqa: S308


def estimated_matches(query: str) -> int:
    """PostgreSQL's own estimate of how many messages (of every company) match `query`, from
    the statistics ANALYZE keeps for the index's expression (each word's share of messages):
    the cost of planning one query, nothing read. It decides between the plans of a search:
    the index's matches for a rare word, a walk in newest-first order for a common one."""
    tsquery = tsquery_sql(query)
    if tsquery is None:
        return 0
    sql, params = tsquery
    vector = MESSAGE_VECTOR_SQL.format(table='"messaging_message"')
    with connection.cursor() as cursor:
        cursor.execute(
            f'EXPLAIN (FORMAT JSON) SELECT 1 FROM "messaging_message" WHERE {vector} @@ {sql}',  # noqa: S608
            params,
        )
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
