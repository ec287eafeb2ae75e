"""Signals other apps listen to, sent after commit (so a listener sees committed rows)."""

from django.dispatch import Signal

# Sent once per stored inbound message: kwargs message_id, conversation_id, company_id, platform.
inbound_message_stored = Signal()
# Sent once a provider accepted an outbound message: kwargs message_id, conversation_id,
# platform, source_id, external_id (the provider's id: an email's Message-ID).
outbound_message_sent = Signal()
# Sent once when an inbound message created its conversation (ingest_inbound): kwargs
# conversation, company_id. Lead distribution (teams) listens to it.
conversation_created = Signal()
