"""What PostgreSQL does for the channel boundary: a conversation names its source by (platform,
source id), with no foreign key, so deleting a source (a number, an account, a mailbox) must
delete its conversations in the database, as ON DELETE CASCADE would — one statement-level
trigger on the source's table, created by the channel's migration with `conversations_follow`.
"""

from django.db import migrations

FUNCTION = "messaging_delete_conversations_of_source"

CREATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- TG_ARGV[0]: the platform; gone: the deleted source rows (transition table).
    DELETE FROM messaging_conversation AS c USING gone
     WHERE c.platform = TG_ARGV[0] AND c.source_id = gone.id;
    RETURN NULL;
END $$;
"""  # noqa: S608 (a constant name, no input)
DROP_FUNCTION = f"DROP FUNCTION IF EXISTS {FUNCTION}() CASCADE;"


def trigger_name(table: str) -> str:
    return f"{table}_deletes_conversations"[:63]


def conversations_follow(table: str, platform: str) -> migrations.RunSQL:
    """A migration operation: deleting rows of `table` (the sources of `platform`) deletes their
    conversations (and so their messages, by the conversations' own cascades)."""
    trigger = trigger_name(table)
    return migrations.RunSQL(
        f"CREATE TRIGGER {trigger} AFTER DELETE ON {table} REFERENCING OLD TABLE AS gone "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}('{platform}');",
        f"DROP TRIGGER IF EXISTS {trigger} ON {table};",
    )
