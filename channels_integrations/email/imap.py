"""Polling a mailbox over IMAP (IMAPClient), and IMAP IDLE for near-instant delivery.

A poll: one at a time per account (a lease), INBOX selected read-only, incremental by UID
within UIDVALIDITY (a changed UIDVALIDITY resyncs the first-sync window; Message-ID dedupe
keeps it free of duplicates), headers first so a known mail's body is never fetched, bodies
with BODY.PEEK (the mailbox is never modified), progress saved per batch (a poll cut short
resumes where it stopped). A failing account backs off (its interval doubling, up to an hour)
and says so; one line is logged per step, never a password or a body.
"""

import logging
import random
import socket
import ssl
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import close_old_connections
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_noop
from imapclient import IMAPClient
from imapclient import tls as imapclient_tls
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

from crm import coordination
from crm.celery import task
from notifications import services as notifications

from .. import channel_metrics, outbound
from ..connections import (
    SHUTDOWN,
    ConnectionLease,
    Supervised,
    connection_is_healthy,
    holder_of,
    notify_admins_of_failure,
    reconnect_loop,
    request_start,
    run_while_held,
)
from ..models import EmailAccount, EmailMessageRecord, EmailQuarantine
from ..outbound import AddressNotAllowed
from .importer import import_batch
from .parsing import message_ids
from .quarantine import quarantined_message_ids

logger = logging.getLogger(__name__)

FETCH_BATCH = 200
MAX_BACKOFF_SECONDS = 3600
HEADER_FIELD = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


class PollError(Exception):
    """A poll failed; `words` say why, for the account's page."""

    def __init__(self, words: str):
        super().__init__(words)
        self.words = words


class ServerUnreachable(ConnectionError):
    """No IMAP greeting: closed, silent, reset, TLS failed or another protocol. One kind (and
    one sentence) for all of them, so an admin cannot tell open ports from closed through us;
    the real cause is in the log."""


def error_words(exc: BaseException, account: EmailAccount) -> str:
    where = f"{account.imap_host}:{account.imap_port}"
    if isinstance(exc, LoginError):
        return "IMAP login failed: the server refused the username or password."
    if isinstance(exc, AddressNotAllowed):
        return f"{account.imap_host} is a private or local address; connections there are off."
    if isinstance(exc, socket.gaierror | UnicodeError):  # UnicodeError: not a valid name
        return f"IMAP host {account.imap_host} was not found."
    if isinstance(exc, ServerUnreachable | ConnectionRefusedError | TimeoutError | socket.timeout):
        return f"Could not connect to the IMAP server at {where}."
    if isinstance(exc, ssl.SSLError):
        return f"The TLS handshake with {where} failed ({exc.reason or 'SSL error'})."
    if isinstance(exc, OSError):
        return f"The connection to {where} failed ({exc.__class__.__name__})."
    return f"IMAP error: {exc}"[:500]


class _CheckedIMAP4(IMAP4WithTimeout):
    def _create_socket(self, timeout=None):
        return outbound.connect(self.host, self.port, self._timeout if timeout is None else timeout)


class _CheckedIMAP4TLS(IMAP4_TLS):
    def _create_socket(self, timeout=None):
        sock = outbound.connect(self.host, self.port, self._timeout if timeout is None else timeout)
        return imapclient_tls.wrap_socket(sock, self.ssl_context, self.host)  # SNI: the name


class CheckedIMAPClient(IMAPClient):
    """IMAPClient that connects only to addresses outbound.connect checked (its private
    `_create_IMAP4` is the one place it opens a socket: pinned with the library's version)."""

    def _create_IMAP4(self):
        timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _CheckedIMAP4TLS(self.host, self.port, self.ssl_context, timeout)
        return _CheckedIMAP4(self.host, self.port, timeout)


@contextmanager
def imap_session(account: EmailAccount):
    """Connected, logged in and logged out again, with a log line per step."""
    logger.info(
        "email: account=%s connecting to IMAP %s:%s",
        account.pk,
        account.imap_host,
        account.imap_port,
    )
    try:
        client = CheckedIMAPClient(
            account.imap_host,
            port=account.imap_port,
            ssl=account.imap_ssl,
            timeout=settings.EMAIL_IMAP_TIMEOUT,
        )
    except (socket.gaierror, AddressNotAllowed):
        raise  # no such host, or one we may not reach: says nothing about a port
    except (OSError, IMAPClientError) as exc:  # before the greeting: see ServerUnreachable
        logger.warning(
            "email: account=%s no IMAP greeting from %s:%s (%s: %s)",
            account.pk,
            account.imap_host,
            account.imap_port,
            exc.__class__.__name__,
            exc,
        )
        raise ServerUnreachable(f"{account.imap_host}:{account.imap_port}") from exc
    logger.info("email: account=%s connection established", account.pk)
    try:
        client.login(account.username, account.password)
        logger.info("email: account=%s login ok", account.pk)
        yield client
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            client.shutdown() if hasattr(client, "shutdown") else None
        logger.info("email: account=%s connection closed", account.pk)


def poll_account(account_id: int) -> dict:
    """Poll one account now, unless a poll of it is already running."""
    name, token = f"email:poll:{account_id}", uuid.uuid4().hex
    if not coordination.take_lease(name, token, settings.EMAIL_POLL_LOCK_SECONDS):
        logger.info("email: account=%s poll already running; skipped", account_id)
        return {"skipped": True}
    try:
        account = EmailAccount.objects.filter(
            pk=account_id, is_active=True, company__is_active=True
        ).first()
        if account is None:
            return {"skipped": True}
        return _poll(account)
    finally:
        coordination.release_lease(name, token)


def _poll(account: EmailAccount) -> dict:
    logger.info("email: account=%s processing account", account.pk)
    started = timezone.now()
    EmailAccount.objects.filter(pk=account.pk).update(last_poll_at=started)
    counts = {"found": 0, "imported": 0, "known": 0, "quarantined": 0}
    try:
        with imap_session(account) as client:
            _sync_inbox(account, client, counts)
    except Exception as exc:
        words = error_words(exc, account)
        logger.error("email: account=%s poll failed: %s", account.pk, words, exc_info=True)
        _record_failure(account, words)
        notifications.notify_connection_failed(
            account.company_id, imap_key(account.pk), str(account), words, _account_url()
        )
        return {**counts, "error": words}
    notifications.connection_healthy(imap_key(account.pk))
    now = timezone.now()
    waiting = EmailQuarantine.objects.filter(account=account).exists()
    if waiting:  # mails that could not be imported wait for an admin
        notifications.notify_connection_failed(
            account.company_id,
            quarantine_key(account.pk),
            str(account),
            gettext_noop("Some mails could not be imported and wait in quarantine."),
            _account_url(),
        )
    else:
        notifications.connection_healthy(quarantine_key(account.pk))
    EmailAccount.objects.filter(pk=account.pk).update(
        status=EmailAccount.Status.WARNING if waiting else EmailAccount.Status.OK,
        last_success_at=now,
        last_error="",
        consecutive_failures=0,
        next_poll_at=now + timedelta(seconds=account.poll_interval_seconds),
    )
    return counts


def _sync_inbox(account: EmailAccount, client, counts: dict) -> None:
    folder = client.select_folder("INBOX", readonly=True)
    uidvalidity = int(folder[b"UIDVALIDITY"])
    logger.info("email: account=%s inbox selected", account.pk)
    if account.uidvalidity != uidvalidity:
        if account.uidvalidity is not None:
            logger.warning("email: account=%s UIDVALIDITY changed; resyncing", account.pk)
        since = date.today() - timedelta(days=account.first_sync_days)
        uids = sorted(client.search(["SINCE", since]))
        EmailAccount.objects.filter(pk=account.pk).update(uidvalidity=uidvalidity, last_uid=0)
    else:
        # "N:*" always names the newest message, even below N: keep only the new ones.
        uids = sorted(
            u for u in client.search(["UID", f"{account.last_uid + 1}:*"]) if u > account.last_uid
        )
    counts["found"] = len(uids)
    logger.info("email: account=%s found %s new", account.pk, len(uids))
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start : start + FETCH_BATCH]
        # Every mail of the batch is stored or quarantined by now: the next poll goes on
        # after it.
        _import_batch(account, client, batch, uidvalidity, counts)
        EmailAccount.objects.filter(pk=account.pk).update(
            last_uid=Greatest(F("last_uid"), max(batch))
        )
    logger.info("email: account=%s imported %s", account.pk, counts["imported"])
    if counts["quarantined"]:
        logger.warning("email: account=%s quarantined %s", account.pk, counts["quarantined"])


def _import_batch(account, client, batch, uidvalidity, counts) -> None:
    """Headers first; bodies only of mails whose Message-ID is not known (nor quarantined)
    yet. Every mail fetched is stored or quarantined."""
    heads = client.fetch(batch, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
    ids = {}
    for uid, data in heads.items():
        header = (data.get(HEADER_FIELD) or b"").decode("ascii", "replace")
        found = message_ids(header.partition(":")[2])
        ids[uid] = found[0] if found else None
    seen = [i for i in ids.values() if i]
    known = set(
        EmailMessageRecord.objects.filter(account=account, message_id__in=seen).values_list(
            "message_id", flat=True
        )
    )
    held = quarantined_message_ids(account, set(seen) - known)
    wanted = [uid for uid in batch if not (ids.get(uid) and ids[uid] in known | held)]
    counts["known"] += len(batch) - len(wanted)
    if not wanted:
        return
    bodies = client.fetch(wanted, ["BODY.PEEK[]", "INTERNALDATE"])
    items = []
    for uid in wanted:
        data = bodies.get(uid) or {}  # absent: expunged meanwhile
        raw = data.get(b"BODY[]")
        if isinstance(raw, bytes):
            items.append((uid, raw, _aware(data.get(b"INTERNALDATE"))))
    outcome = import_batch(account, items, uidvalidity)
    counts["imported"] += outcome["imported"]
    counts["known"] += outcome["known"]
    counts["quarantined"] += outcome["quarantined"]
    EmailAccount.objects.filter(pk=account.pk).update(
        messages_imported=F("messages_imported") + outcome["imported"]
    )


def _aware(value):
    if not isinstance(value, datetime):
        return None
    try:
        return value if value.tzinfo else timezone.make_aware(value)
    except (ValueError, OverflowError):
        return None


def imap_key(account_id: int) -> str:
    """The connection a failure of this account's IMAP is told about (notifications)."""
    return f"email:imap:{account_id}"


def quarantine_key(account_id: int) -> str:
    return f"email:quarantine:{account_id}"


def _account_url() -> str:
    return reverse("email_accounts")


def _record_failure(account: EmailAccount, words: str) -> None:
    failures = account.consecutive_failures + 1
    delay = min(account.poll_interval_seconds * 2**failures, MAX_BACKOFF_SECONDS)
    delay *= 0.8 + random.random() * 0.4  # noqa: S311 (jitter, not crypto)
    now = timezone.now()
    retry_at = now + timedelta(seconds=delay)
    EmailAccount.objects.filter(pk=account.pk).update(
        status=EmailAccount.Status.ERROR,
        last_error=f"{words} Retrying at {timezone.localtime(retry_at):%H:%M:%S}.",
        last_error_at=now,
        consecutive_failures=failures,
        next_poll_at=retry_at,
    )


# ---------------------------------------------------------------- dispatch (beat)


def due_accounts():
    due = Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=timezone.now())
    return EmailAccount.objects.filter(due, is_active=True, company__is_active=True).values_list(
        "pk", flat=True
    )


def dispatch_polls() -> list[int]:
    """Queue a poll of every active account that is due (once per interval: a queued or
    running poll is not queued again), so a slow account never delays the others."""
    poll_email_account = task("channels_integrations.email.tasks.poll_email_account")

    queued = []
    client = coordination.redis_client()
    for account_id in due_accounts():
        key = coordination.key(f"email:poll-queued:{account_id}")
        if client.set(key, "1", nx=True, ex=settings.EMAIL_POLL_LOCK_SECONDS):
            poll_email_account.delay(account_id)
            queued.append(account_id)
    return queued


def poll_finished(account_id: int) -> None:
    coordination.redis_client().delete(coordination.key(f"email:poll-queued:{account_id}"))


# ---------------------------------------------------------------- IDLE

IDLE_KIND = "email:idle"


def _idle_once(account_id: int, lease, stop_wanted, listener) -> str:
    """Hold one IDLE connection on INBOX; each new mail the server announces queues a poll
    at once. Returns why it ended; raises on connection errors (the caller backs off)."""
    poll_email_account = task("channels_integrations.email.tasks.poll_email_account")

    account = EmailAccount.objects.get(pk=account_id)
    with imap_session(account) as client:
        if b"IDLE" not in client.capabilities():
            return "no_idle"
        client.select_folder("INBOX", readonly=True)
        listener.connected = True
        connection_is_healthy(lease)  # a failure episode the admins were told of ends
        # Whatever arrived while no IDLE was open (first start, after a drop) comes in now.
        poll_email_account.delay(account_id)
        renew_every = settings.CONNECTION_LEASE_SECONDS / 3
        while True:
            client.idle()
            started = last_renew = time.monotonic()
            try:
                while time.monotonic() - started < 25 * 60:  # servers end IDLE at 30 min
                    responses = client.idle_check(timeout=1)
                    if any(len(item) > 1 and item[1] == b"EXISTS" for item in responses):
                        logger.info("email: account=%s IDLE: new mail; polling", account_id)
                        poll_email_account.delay(account_id)
                    if time.monotonic() - last_renew >= renew_every:
                        if not lease.renew():
                            return "lease_lost"
                        last_renew = time.monotonic()
                    if stop_wanted():
                        return "stopped"
            finally:
                client.idle_done()


class IdleListener(Supervised):
    """IMAP IDLE on one account's INBOX, reconnecting with backoff for as long as the account
    wants IDLE (no attempt limit: polling carries on meanwhile)."""

    def __init__(self, account_id: int, lease):
        self.account_id = account_id
        self.lease = lease

    def stop_wanted(self) -> bool:
        close_old_connections()
        wanted = EmailAccount.objects.filter(
            pk=self.account_id, is_active=True, use_idle=True, company__is_active=True
        )
        return SHUTDOWN.is_set() or not wanted.exists()

    def connect_once(self, attempts: int) -> str:
        try:
            outcome = _idle_once(self.account_id, self.lease, self.stop_wanted, self)
        except Exception as exc:
            return error_words(exc, EmailAccount.objects.get(pk=self.account_id))
        self.stop_reason = outcome  # "stopped", "no_idle" or "lease_lost": not a failure
        return ""

    def on_retry(self, error: str, attempts: int, delay: float) -> None:
        idle_failed(self.lease, error, attempts, delay)


# Failed IDLE connects in a row before the admins are told: servers end IDLE now and then,
# and polling keeps fetching mail meanwhile, so one drop is nothing to tell anyone.
IDLE_TELL_AFTER = 3


def idle_failed(lease: ConnectionLease, error: str, attempts: int, delay: float) -> None:
    """An IDLE connect of `lease`'s mailbox failed (`attempts` in a row; the next in `delay`
    s): counted, logged, and once it keeps failing the admins are told (once per episode,
    until IDLE is up again). Both IDLE runners (worker thread and connection host) call it."""
    channel_metrics.increment("email", "errors")
    channel_metrics.increment("email", "reconnect_attempts")
    logger.warning("email: account=%s IDLE dropped: %s; again in %.1fs", lease.key, error, delay)
    if attempts >= IDLE_TELL_AFTER:
        notify_admins_of_failure(lease, error)


def run_idle(account_id: int) -> str:
    """The IDLE listener of one account (connections queue): one per account across
    workers (the connection lease), reconnecting with backoff; polling stays the fallback."""
    lease = ConnectionLease.acquire(IDLE_KIND, EmailAccount, "pk", account_id)
    return run_while_held(
        lease,
        IDLE_KIND,
        account_id,
        lambda held: reconnect_loop(IdleListener(account_id, held), held),
    )


def supervise_idle() -> list[int]:

    run_email_idle = task("channels_integrations.email.tasks.run_email_idle")

    started = []
    idle = EmailAccount.objects.filter(is_active=True, use_idle=True, company__is_active=True)
    for account_id in idle.values_list("pk", flat=True):
        if holder_of(IDLE_KIND, account_id) is None and request_start(
            IDLE_KIND, account_id, run_email_idle
        ):
            started.append(account_id)
    return started
