"""PostgreSQL backend whose foreign keys carry the model's delete rule into the database, and
whose timestamps are read by psycopg's C loader.

Django emulates `on_delete` in Python only; its PostgreSQL constraints say `NO ACTION`.
Here every foreign key is created with `ON DELETE CASCADE` (or `SET NULL`) matching the
model, so one SQL `DELETE` of a parent removes its whole tree without loading it, and a
change of `on_delete` in a migration re-creates the constraint.

Django 5.2 reads every `timestamptz` with a loader derived from psycopg's pure-Python one
(Django ticket #36960; psycopg's C loader cannot be subclassed, psycopg #1273): ~10% of the
conversation list's CPU went to parsing its 200 timestamps in Python. `TimestampLoader`
keeps Django's contract (a `timezone` attribute, values in that zone) and lets the C loader
parse when the session already speaks that zone (Django sets it to UTC on connect).
"""

from functools import lru_cache

from django.conf import settings
from django.db import models
from django.db.backends.postgresql import base, psycopg_any, schema
from psycopg import adapt
from psycopg import adapters as psycopg_adapters
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

TIMESTAMPTZ_OID = pg_types["timestamptz"].oid
# psycopg's own map holds its optimised (C) loader when psycopg[binary] is installed.
OPTIMISED_TIMESTAMPTZ_LOADER = psycopg_adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)

DB_ON_DELETE = {
    models.CASCADE: " ON DELETE CASCADE",
    models.SET_NULL: " ON DELETE SET NULL",
}


def db_on_delete_sql(field) -> str:
    return DB_ON_DELETE.get(getattr(field.remote_field, "on_delete", None), "")


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    # Without an inline form, new columns get their constraint from _create_fk_sql too.
    sql_create_column_inline_fk = None

    def _create_fk_sql(self, model, field, suffix):
        statement = super()._create_fk_sql(model, field, suffix)
        statement.parts["deferrable"] = db_on_delete_sql(field) + statement.parts["deferrable"]
        return statement

    def _field_should_be_altered(self, old_field, new_field, ignore=None):
        if (
            old_field.remote_field
            and new_field.remote_field
            and not new_field.many_to_many
            and db_on_delete_sql(old_field) != db_on_delete_sql(new_field)
        ):
            return True
        return super()._field_should_be_altered(old_field, new_field, ignore)


class TimestampLoader(psycopg_any.BaseTzLoader):
    """Django's loader (`timezone` is the zone Django wants the values in); its parsing is
    handed to psycopg's optimised loader when the session's zone is that zone, which makes
    Django's `replace(tzinfo=...)` a no-op."""

    def __init__(self, oid, context=None):
        connection = getattr(context, "connection", None)
        if (
            self.timezone is not None
            and connection is not None
            and connection.info.timezone == self.timezone
        ):
            # The pure-Python parser's set-up (date style, zone) is skipped: it would not run.
            adapt.Loader.__init__(self, oid, context)
            self.load = OPTIMISED_TIMESTAMPTZ_LOADER(oid, context).load
        else:
            super().__init__(oid, context)


@lru_cache
def adapters_template(use_tz: bool, timezone) -> adapt.AdaptersMap:
    """Django's adapters for this zone, with `TimestampLoader` in place of its loader."""
    context = adapt.AdaptersMap(psycopg_any.get_adapters_template(use_tz, timezone))
    loader = type(
        "TimestampLoader", (TimestampLoader,), {"timezone": timezone, "__module__": __name__}
    )
    context.register_loader("timestamptz", loader)
    return context


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor

    def get_connection_params(self):
        params = super().get_connection_params()
        if "context" in params:  # psycopg 3 (the pool takes the same parameters)
            params["context"] = adapters_template(settings.USE_TZ, self.timezone)
        return params
