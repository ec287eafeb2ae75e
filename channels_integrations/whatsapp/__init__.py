"""WhatsApp connections: the Cloud API (`cloud`) and QR-linked sessions via neonize (`web`),
behind one channel (`channel.py`, registered with messaging.channels)."""

PLATFORM = "whatsapp"  # conversations of this channel carry it (channel.py registers it)
