"""The lease of a number's QR-linked session (channels_integrations.connections explains the
lease and its fencing); its state row is the number's WhatsAppSession."""

from ..connections import ConnectionLease, LeaseLost, holder_of  # noqa: F401 (LeaseLost: re-exported)
from ..connections import lease_name as _lease_name
from ..models import WhatsAppSession

KIND = "whatsapp:session"


def lease_name(number_id: int) -> str:
    return _lease_name(KIND, number_id)


def number_holder(number_id: int) -> str | None:
    return holder_of(KIND, number_id)


class SessionLease(ConnectionLease):
    @classmethod
    def acquire(cls, number_id: int) -> "SessionLease | None":
        WhatsAppSession.objects.get_or_create(number_id=number_id)
        return super().acquire(KIND, WhatsAppSession, "number_id", number_id)
