"""PostgreSQL backend whose foreign keys carry the model's delete rule into the database.

Django emulates `on_delete` in Python only; its PostgreSQL constraints say `NO ACTION`.
Here every foreign key is created with `ON DELETE CASCADE` (or `SET NULL`) matching the
model, so one SQL `DELETE` of a parent removes its whole tree without loading it, and a
change of `on_delete` in a migration re-creates the constraint.
"""

from django.db import models
from django.db.backends.postgresql import base, schema

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


class DatabaseWrapper(base.DatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor
