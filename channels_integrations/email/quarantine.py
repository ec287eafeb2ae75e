"""Mails that could not be stored: recorded once with their UID, Message-ID, size, the reason
and the raw bytes; later polls pass them by (the account shows a warning with the count); an
admin retries one (imported again from its raw bytes) or downloads it."""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crm.db.upsert import insert_unless_conflict

from ..models import EmailAccount, EmailQuarantine
from .parsing import clean, parse_mail

logger = logging.getLogger(__name__)


def reason_words(exc: BaseException) -> str:
    """What went wrong, in one line (a database error's DETAIL may quote the mail: left out)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return clean(f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__)[:500]


def quarantine(
    account: EmailAccount, uidvalidity, uid: int, message_id: str, raw: bytes, exc, arrived=None
):
    """Record a mail that could not be stored (once: the same UID again changes nothing)."""
    item = EmailQuarantine(
        account=account,
        uidvalidity=uidvalidity,
        uid=uid,
        message_id=clean(message_id or "")[:998],
        size=len(raw),
        reason=reason_words(exc),
        raw=raw,
        arrived_at=arrived,
    )
    if insert_unless_conflict(item):
        logger.warning(
            "email: account=%s uid=%s quarantined: %s", account.pk, uid, item.reason[:200]
        )


def quarantined_message_ids(account: EmailAccount, message_ids) -> set[str]:
    if not message_ids:
        return set()
    return set(
        EmailQuarantine.objects.filter(account=account, message_id__in=list(message_ids))
        .exclude(message_id="")
        .values_list("message_id", flat=True)
    )


def settle_status(account_id: int) -> None:
    """OK or warning, by whether anything is quarantined (an error status stays until the
    next poll succeeds)."""
    waiting = EmailQuarantine.objects.filter(account_id=account_id).exists()
    EmailAccount.objects.filter(
        pk=account_id, status__in=[EmailAccount.Status.OK, EmailAccount.Status.WARNING]
    ).update(status=EmailAccount.Status.WARNING if waiting else EmailAccount.Status.OK)


def retry(item: EmailQuarantine) -> dict:
    """Import a quarantined mail again from its raw bytes: {"ok": True, "imported": bool}
    (False: a copy had come in another way meanwhile), the row gone; or {"ok": False,
    "reason": ...}, the row kept with the new reason and one more attempt."""
    from .importer import _import_parsed  # noqa: PLC0415 (the importer imports this module)

    account = EmailAccount.objects.get(pk=item.account_id)
    mail = parse_mail(bytes(item.raw), attachment_limit=settings.ATTACHMENT_MAX_BYTES)
    try:
        with transaction.atomic():
            outcome = _import_parsed(
                account, [(item.uid, mail, item.arrived_at or item.created_at)], item.uidvalidity
            )
            EmailQuarantine.objects.filter(pk=item.pk).delete()
            if outcome["imported"]:
                EmailAccount.objects.filter(pk=account.pk).update(
                    messages_imported=F("messages_imported") + outcome["imported"]
                )
    except Exception as exc:
        reason = reason_words(exc)
        EmailQuarantine.objects.filter(pk=item.pk).update(
            attempts=F("attempts") + 1, reason=reason, last_attempt_at=timezone.now()
        )
        logger.warning("email: account=%s uid=%s retry failed: %s", account.pk, item.uid, reason)
        return {"ok": False, "reason": reason}
    settle_status(account.pk)
    logger.info("email: account=%s uid=%s retried and imported", account.pk, item.uid)
    return {"ok": True, "imported": bool(outcome["imported"])}
