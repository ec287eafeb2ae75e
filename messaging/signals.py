"""Signals other apps listen to, sent after commit (so a listener sees committed rows)."""

from django.dispatch import Signal

# Sent once per stored inbound message: kwargs message_id, conversation_id, company_id, platform.
inbound_message_stored = Signal()
