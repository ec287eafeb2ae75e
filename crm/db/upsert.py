"""INSERT ... ON CONFLICT DO NOTHING RETURNING id, for one model instance; and a cursor whose
statements are prepared once per connection, for hot hand-written statements.

Django's bulk_create(ignore_conflicts=True) cannot tell whether the row went in; idempotent
writes need exactly that answer, from the database, in one statement (no savepoint).
"""

from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.backends.postgresql.base import ServerBindingCursor
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def insert_unless_conflict(instance) -> bool:
    """Insert `instance` unless a unique constraint already holds such a row.

    Returns True (and sets instance.pk) when inserted, False when the row already existed.
    """
    model = type(instance)
    using = router.db_for_write(model)
    fields = [field for field in model._meta.local_concrete_fields if not field.primary_key]
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [instance])
    compiler = query.get_compiler(using=using)
    compiler.returning_fields = [model._meta.pk]
    [(sql, params)] = compiler.as_sql()
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    instance.pk = row[0]
    instance._state.adding = False
    instance._state.db = using
    return True


class _PreparingCursor(ServerBindingCursor):
    """Server-side binding, and every statement prepared (psycopg keeps them per connection)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(
            query, params, prepare=True if prepare is None else prepare, binary=binary
        )


class _KeptCursor(_PreparingCursor):
    """The _PreparingCursor a connection keeps and hands out again (see prepared_cursor):
    closing it through Django's wrapper leaves it open; it goes with its connection."""

    def close(self) -> None:
        pass


def prepared_cursor(using: str = DEFAULT_DB_ALIAS, *, own: bool = False):
    """A Django cursor (query logging, execute wrappers, error translation) whose statements
    PostgreSQL parses and plans once per connection, not on every call.

    For a hot statement whose planning costs more than running it (a CTE that inserts and
    updates in one round trip): Django's default cursor binds values on the client, so the
    server plans every execution anew. Write predicates so that a generic plan still finds
    its indexes (e.g. repeat a partial index's condition).

    The connection keeps one such cursor and hands it out again: psycopg learns how to dump
    each parameter's type and load each column once per cursor (on a new cursor that was 41
    µs of the ingest statement's ~200, bench/ingest.py). So read a statement's rows before the
    next call; `own=True` gives a cursor of one's own (several at once, e.g. in a pipeline)."""
    connection = connections[using]
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None and "prepare_threshold" not in connection.settings_dict.get(
        "OPTIONS", {}
    ):
        # Django turns psycopg's preparing off unless OPTIONS say otherwise (for poolers);
        # a threshold no statement reaches opts in only what this cursor runs (prepare=True).
        raw.prepare_threshold = 2**31
    if own:
        cursor = _PreparingCursor(raw)
    else:
        cursor = getattr(connection, "_kept_prepared_cursor", None)
        if cursor is None or cursor.connection is not raw:  # first use, or reconnected
            cursor = connection._kept_prepared_cursor = _KeptCursor(raw)
    with connection.wrap_database_errors:
        return connection._prepare_cursor(cursor)
