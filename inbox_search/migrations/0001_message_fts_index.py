"""Full-text search over message text: one GIN index on an expression (no stored column).

The expression is inbox_search.fts.MESSAGE_VECTOR_SQL; queries repeat it verbatim, so the planner
uses this index. Built CONCURRENTLY: no table rewrite and no lock that stops ingest while it
builds (a stored generated column would rewrite the whole table under an exclusive lock).
"""

from django.db import migrations

from inbox_search.fts import MESSAGE_INDEX, message_index_sql


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [("messaging", "0012_attachment_download_state")]

    operations = [
        migrations.RunSQL(
            message_index_sql(), f'DROP INDEX CONCURRENTLY IF EXISTS "{MESSAGE_INDEX}"'
        ),
    ]
