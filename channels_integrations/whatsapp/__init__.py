"""WhatsApp connections: the Cloud API (`cloud`) and QR-linked sessions via neonize (`web`),
behind the one provider interface of messaging.providers."""
