"""INSERT ... ON CONFLICT DO NOTHING RETURNING id, for one model instance.

Django's bulk_create(ignore_conflicts=True) cannot tell whether the row went in; idempotent
writes need exactly that answer, from the database, in one statement (no savepoint).
"""

from django.db import connections, router
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
