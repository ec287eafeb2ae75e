"""Writes for the inbox and team chats. `ingest_inbound` (`ingest_inbound_many` for a batch)
is the one door in for every channel; `send_message` the one door out."""

from .chats import (  # noqa: F401
    NotAMember,
    add_reaction,
    create_chat,
    delete_chat,
    edit_chat_message,
    leave_chat,
    remove_reaction,
    send_chat_message,
    validate_chat_body,
    validate_emoji,
)
from .inbox import (  # noqa: F401
    Inbound,
    IngestResult,
    Sender,
    SourceInactive,
    assign_conversation,
    ingest_inbound,
    ingest_inbound_many,
    mark_conversation_read,
    name_thread_client,
    open_conversation,
    send_message,
    set_conversation_status,
    validate_body,
)
from .notes import add_note  # noqa: F401
from .outbox import record_delivery_status, record_delivery_statuses, retry_message  # noqa: F401
