"""Full-text search over message text: one GIN index on an expression (no stored column).

The expression is search.fts.MESSAGE_VECTOR_SQL; queries repeat it verbatim, so the planner
uses this index. Built CONCURRENTLY: no table rewrite and no lock that stops ingest while it
builds (a stored generated column would rewrite the whole table under an exclusive lock).
"""

from django.db import migrations

from search.fts import MESSAGE_VECTOR_SQL

INDEX = "msg_body_fts_idx"


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("messaging", "0012_attachment_download_state")]

    operations = [
        migrations.RunSQL(
            f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{INDEX}" ON "messaging_message" '
            f"USING gin ({MESSAGE_VECTOR_SQL.format(table='messaging_message')})",
            f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX}"',
        ),
    ]
