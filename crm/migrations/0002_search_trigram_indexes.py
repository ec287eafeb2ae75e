"""Trigram indexes for the inbox search. `icontains` on PostgreSQL is
`UPPER(col::text) LIKE UPPER('%q%')`, so the indexes are on that expression."""

from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

INDEXES = {
    "client_name_trgm_idx": ("crm_client", "name"),
    "client_phone_trgm_idx": ("crm_client", "phone"),
    "client_email_trgm_idx": ("crm_client", "email"),
    "conv_subject_trgm_idx": ("messaging_conversation", "subject"),
}


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0001_initial"),
        ("messaging", "0003_conversation_last_message_at_not_null"),
    ]

    operations = [
        TrigramExtension(),
        *(
            migrations.RunSQL(
                f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" USING gin ((UPPER("{column}"::text)) gin_trgm_ops)',
                f'DROP INDEX IF EXISTS "{name}"',
            )
            for name, (table, column) in INDEXES.items()
        ),
    ]
