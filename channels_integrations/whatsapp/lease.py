"""Exactly one live connection per WhatsApp number: a Redis lease its holder renews, fenced
by an epoch that PostgreSQL checks on every write of session state.

Acquiring takes the Redis lease (SET NX with a TTL) and then a fresh epoch (INCR) that is
written to the session row only if it is newer than the row's. Every later write of the
holder names its epoch in the WHERE clause, so a holder that paused past its TTL (a GC
pause, a frozen VM) and lost the lease to a newer holder writes nothing: its epoch is older.
"""

import logging
import os
import socket
import uuid

from django.conf import settings
from django.db import transaction

from crm import coordination

from ..models import WhatsAppSession

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another holder has the number now: stop and write nothing more."""


def lease_name(number_id: int) -> str:
    return f"whatsapp:session:{number_id}"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_of(number_id: int) -> str | None:
    """The token of the lease's current holder, None when nobody holds it."""
    return coordination.lease_holder(lease_name(number_id))


class SessionLease:
    def __init__(self, number_id: int, token: str, epoch: int):
        self.number_id = number_id
        self.token = token
        self.epoch = epoch

    @classmethod
    def acquire(cls, number_id: int) -> "SessionLease | None":
        """Take the number's lease, or None when another holder has it."""
        token = f"{worker_name()}:{uuid.uuid4().hex[:8]}"
        name = lease_name(number_id)
        if not coordination.take_lease(name, token, settings.WHATSAPP_LEASE_SECONDS):
            return None
        epoch = coordination.redis_client().incr(coordination.key(f"{name}:epoch"))
        with transaction.atomic():
            WhatsAppSession.objects.get_or_create(number_id=number_id)
            claimed = WhatsAppSession.objects.filter(
                number_id=number_id, lease_epoch__lt=epoch
            ).update(lease_epoch=epoch, holder=token)
        if not claimed:  # a newer epoch already wrote the row (our INCR raced a faster one)
            coordination.release_lease(name, token)
            return None
        logger.info("whatsapp: number=%s lease taken epoch=%s", number_id, epoch)
        return cls(number_id, token, epoch)

    def renew(self) -> bool:
        """Extend the TTL; False when the lease was lost (expired and taken by another)."""
        return coordination.take_lease(
            lease_name(self.number_id), self.token, settings.WHATSAPP_LEASE_SECONDS
        )

    def release(self) -> None:
        coordination.release_lease(lease_name(self.number_id), self.token)
        logger.info("whatsapp: number=%s lease released", self.number_id)

    def write(self, **fields) -> None:
        """Write session state, only as the current holder (Redis token, then the epoch)."""
        if holder_of(self.number_id) != self.token:
            raise LeaseLost(f"number {self.number_id}: the lease is held by another worker")
        updated = WhatsAppSession.objects.filter(
            number_id=self.number_id, lease_epoch=self.epoch
        ).update(**fields)
        if not updated:
            raise LeaseLost(f"number {self.number_id}: a newer holder owns the session")
