"""QR-linked WhatsApp sessions: one live connection per number, supervised.

- `run_session` (the Celery task run_whatsapp_session, on the `connections` queue) takes the
  number's lease and drives the adapter: connect, QR, connected, messages, heartbeats, and
  reconnects that back off exponentially with jitter until CONNECTION_MAX_RECONNECT_ATTEMPTS,
  then `failed`. Logged out means stop and ask for a new scan, never retry.
- `supervise` (beat, every CONNECTION_SUPERVISOR_SECONDS) starts wanted sessions nobody holds,
  and health-checks held ones by heartbeat age.
- Other processes talk to the holder through a Redis list of commands (send, logout,
  restart); the holder answers sends on a reply key.
Every write of session state goes through the lease (lease.SessionLease.write): a holder that
lost its lease writes nothing.
"""

import base64
import io
import logging
import threading
import time
from dataclasses import asdict

import redis
import segno
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.functional import Promise
from django.utils.module_loading import import_string
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from crm import coordination
from crm.celery import task
from crm.vocabulary import label_for
from messaging import sending
from messaging.channels import (
    DownloadError,
    OutboundFile,
    SendError,
    SendReceipt,
    TransientSendError,
)
from messaging.services.inbox import mark_inbound_deleted, record_inbound_edit
from messaging.services.reactions import record_customer_reaction

from .. import channel_metrics, fleet
from ..connections import (
    SHUTDOWN,
    LeaseLost,
    Supervised,
    answer,
    ask_holder,
    download_through_holder,
    next_command,
    notify_admins_of_failure,
    reconnect_loop,
    request_start,
    run_while_held,
    send_command,
    stop_holder,
    write_failure,
)
from ..connections import (
    publish_to_admins as _publish_to_admins,
)
from ..models import WhatsAppNumber, WhatsAppSession
from . import metrics
from .inbound import apply_delivery_reports, ingest_whatsapp_messages, whatsapp_inbound
from .lease import KIND, SessionLease
from .lease import number_holder as holder_of
from .web import forget_device

logger = logging.getLogger(__name__)

ADMIN_LOGOUT = "logged out by an admin"
Status = WhatsAppSession.Status


def _qr_key(number_id: int) -> str:
    return coordination.key(f"whatsapp:qr:{number_id}")


# ---------------------------------------------------------------- what admins see


def qr_payload(code: str) -> dict:
    """The QR as the raw string, a PNG data URL and a terminal rendering."""
    qr = segno.make_qr(code)
    png = io.BytesIO()
    qr.save(png, kind="png", scale=5, border=2)
    terminal = io.StringIO()
    qr.terminal(out=terminal, compact=True)
    return {
        "qr": code,
        "qrDataUrl": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
        "qrTerminal": terminal.getvalue(),
    }


def current_qr(number_id: int) -> str | None:
    try:
        value = coordination.redis_client().get(_qr_key(number_id))
    except redis.RedisError:
        return None
    return value.decode() if value else None


def heartbeat_age(session: WhatsAppSession) -> float | None:
    if session.last_heartbeat_at is None:
        return None
    return (timezone.now() - session.last_heartbeat_at).total_seconds()


def health(session: WhatsAppSession) -> tuple[bool, Promise]:
    """Healthy: connected, held by a live worker, and its heartbeat recent. The sentence is
    lazy: each reader gets it in their language (the API, admins' events), the log English."""
    if session.status != Status.CONNECTED:
        return False, format_lazy(
            gettext_lazy("The session is not connected: {status}."),
            status=Status(session.status).label,
        )
    if holder_of(session.number_id) is None:
        return False, gettext_lazy("No worker holds the connection.")
    age = heartbeat_age(session)
    if age is None or age > settings.CONNECTION_HEARTBEAT_MAX_AGE:
        return False, gettext_lazy("The connection's heartbeat is late.")
    return True, gettext_lazy("Connected.")


def session_payload(session: WhatsAppSession) -> dict:
    healthy, detail = health(session)
    age = heartbeat_age(session)
    status, label = fleet.row_state(session)
    return {
        "number_id": session.number_id,
        "status": "reconnecting" if status == "waiting" else status,
        "status_label": label,
        "waiting_for_capacity": status == "waiting",
        "healthy": healthy,
        "health": detail,
        "last_connected_at": session.last_connected_at,
        "last_heartbeat_at": session.last_heartbeat_at,
        "heartbeat_age_seconds": round(age, 1) if age is not None else None,
        "reconnect_attempts": session.reconnect_attempts,
        "next_attempt_at": session.next_attempt_at,
        "last_error": session.last_error,
        "last_error_at": session.last_error_at,
    }


def publish_to_admins(event: str, number: WhatsAppNumber, data: dict) -> None:
    _publish_to_admins(number.company_id, event, {"number_id": number.pk, **data})


# ---------------------------------------------------------------- admin actions


def _web_number(number: WhatsAppNumber) -> None:
    if number.provider != WhatsAppNumber.Provider.WEB:
        raise ValidationError(
            {"provider": [_("Cloud API numbers connect with their access token, not a QR code.")]}
        )
    if not number.is_active or number.status == WhatsAppNumber.Status.DELETING:
        raise ValidationError({"number": [_("This number is deactivated; reactivate it first.")]})


def initialize_session(actor, number: WhatsAppNumber, wait_seconds: float = 8.0) -> dict:
    """Start (or restart, for a fresh QR) the number's session; wait briefly for its QR."""
    run_whatsapp_session = task("channels_integrations.whatsapp.tasks.run_whatsapp_session")

    _web_number(number)
    with transaction.atomic():
        session, _ = WhatsAppSession.objects.get_or_create(number=number)
        if session.status == Status.CONNECTED and holder_of(number.pk):
            return {"status": session.status, **session_payload(session)}
        WhatsAppSession.objects.filter(pk=session.pk).update(
            status=Status.STARTING,
            reconnect_attempts=0,
            next_attempt_at=None,
            last_error="",
            updated_at=timezone.now(),
        )
        previous_qr = current_qr(number.pk)
        if holder_of(number.pk):
            send_command(KIND, number.pk, {"op": "restart"})
        elif fleet.enabled():
            transaction.on_commit(lambda: fleet.assign_now(KIND, number.pk))
        else:
            transaction.on_commit(lambda: run_whatsapp_session.delay(number.pk))
    logger.info("whatsapp: number=%s session initialised by user=%s", number.pk, actor.pk)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        session.refresh_from_db()
        code = current_qr(number.pk)
        if code and code != previous_qr:
            return {**session_payload(session), **qr_payload(code)}
        if session.status not in (Status.STARTING, Status.QR):
            break
        time.sleep(0.1)
    session.refresh_from_db()
    return {**session_payload(session), "qr": None, "qrDataUrl": None, "qrTerminal": None}


def logout_session(actor, number: WhatsAppNumber, wait_seconds: float = 5.0) -> WhatsAppSession:
    """Log the linked device out (the holder tells WhatsApp); a new QR scan is needed."""
    _web_number(number)
    session, _ = WhatsAppSession.objects.get_or_create(number=number)
    if holder_of(number.pk):
        send_command(KIND, number.pk, {"op": "logout"})
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            session.refresh_from_db()
            if session.status == Status.LOGGED_OUT:
                break
            time.sleep(0.1)
    if session.status != Status.LOGGED_OUT:  # nobody held it (or it did not answer in time)
        with transaction.atomic():
            forget_device(number.web_jid)  # the phone lists it until it notices
            WhatsAppSession.objects.filter(pk=session.pk).update(
                status=Status.LOGGED_OUT, updated_at=timezone.now()
            )
            WhatsAppNumber.objects.filter(pk=number.pk).update(
                web_jid="", status=WhatsAppNumber.Status.DISCONNECTED
            )
            publish_to_admins("whatsapp.logout", number, {"reason": "logged out by an admin"})
        session.refresh_from_db()
    logger.info("whatsapp: number=%s logged out by user=%s", number.pk, actor.pk)
    return session


def stop_session(number_id: int) -> None:
    """The number is deactivated or being deleted: its holder lets go within a tick (it
    also watches the row, so a lost command only makes it take two seconds)."""
    WhatsAppSession.objects.filter(number_id=number_id).update(
        status=Status.STOPPED, updated_at=timezone.now()
    )
    stop_holder(KIND, number_id)


# ---------------------------------------------------------------- sending via the holder


def send_through_session(
    number_id: int,
    key: str,
    to: str,
    body: str,
    timeout: float = 20.0,
    *,
    quoted: str = "",
    files: tuple[OutboundFile, ...] = (),
) -> SendReceipt:
    """Hand a message to the worker holding the number's session and wait for its answer.
    `key` is the send's namespaced key: a send the holder already made (a retried task) is
    answered from its record (messaging.sending), never sent twice. `quoted`: the WhatsApp id
    of a message to reply to; `files` go out one message each (the text as the first's
    caption), each part once."""
    if holder_of(number_id) is None:
        raise TransientSendError("The WhatsApp session of this number is not connected.")
    command = {"op": "send", "key": key, "to": to, "body": body, "quoted": quoted}
    if files:
        command["files"] = [asdict(file) for file in files]
        timeout += 10.0 * len(files)
    reply = ask_holder(KIND, number_id, command, timeout)
    if reply is None:
        raise TransientSendError("The WhatsApp session did not answer in time.")
    if "id" in reply:
        return SendReceipt(external_id=reply["id"])
    raise SendError(reply.get("error") or "The WhatsApp session could not send the message.")


def react_through_session(
    number_id: int, to: str, target: str, emoji: str, timeout: float = 20.0
) -> None:
    """Hand our reaction on the customer's message `target` to the session's holder."""
    if holder_of(number_id) is None:
        raise TransientSendError("The WhatsApp session of this number is not connected.")
    command = {"op": "react", "to": to, "target": target, "emoji": emoji}
    reply = ask_holder(KIND, number_id, command, timeout)
    if reply is None:
        raise TransientSendError("The WhatsApp session did not answer in time.")
    if "error" in reply:
        raise SendError(reply["error"])


def download_through_session(number_id: int, ref: dict, max_bytes: int, destination) -> str:
    """Ask the worker holding the number's session to download an announced file (the
    adapter's `download`, from its `ref`) into a spool file of our storage; then copy it into
    `destination` in chunks and remove the spool file."""
    if not ref:
        raise DownloadError("WhatsApp did not say how to download this file.")
    if holder_of(number_id) is None:
        raise DownloadError("The WhatsApp session of this number is not connected; try again.")
    download_through_holder(
        KIND,
        number_id,
        {"op": "download", "ref": ref},
        timeout=120.0,
        max_bytes=max_bytes,
        destination=destination,
        no_answer="The WhatsApp session did not answer in time; try again.",
    )
    return ""


# ---------------------------------------------------------------- the holder


class SessionRunner(Supervised):
    """Drives one number's connection while holding its lease (see the module docstring)."""

    def __init__(self, number_id: int, lease: SessionLease):
        self.number = WhatsAppNumber.objects.get(pk=number_id)
        self.lease = lease
        self.adapter = None
        self.stop_reason: str | None = None
        self.restart_requested = False
        self.callback_error = ""
        self.qr_count = 0
        self.redis = coordination.redis_client()
        self._home = threading.current_thread()  # the task's thread; callbacks come on others

    # -- state, always through the lease

    def _write(self, **fields) -> None:
        self.lease.write(updated_at=timezone.now(), **fields)

    def _stop(self, reason: str) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.adapter is not None:
            self.adapter.stop()

    def _guarded(self, callback, *args, fatal: bool = True) -> None:
        """Callbacks run on neonize's threads: a lost lease or a failure there stops the
        session instead of vanishing into a foreign thread; and the database connection such
        a thread opened is closed again (Go keeps its threads, Django would keep one each).
        A failed state callback (`fatal`: QR, paired, connected, ...) ends the connection as a
        failure, so it is recorded and retried with backoff, never left `starting`; a failed
        message is counted and recorded as the last error."""
        try:
            callback(*args)
        except LeaseLost as exc:
            logger.warning("whatsapp: number=%s lost its lease (%s); stopping", self.number.pk, exc)
            self._stop("lease_lost")
        except Exception as exc:
            logger.exception("whatsapp: number=%s callback failed", self.number.pk)
            error = f"{callback.__name__.strip('_')} failed: {exc.__class__.__name__}: {exc}"
            metrics.record_error(error, self.number.company_id)
            if fatal:
                self.callback_error = error
                if self.adapter is not None:
                    self.adapter.stop()
        finally:
            if self._closes_connection():
                connection.close()

    def _closes_connection(self) -> bool:
        return threading.current_thread() is not self._home

    # -- the loop

    def run(self) -> str:
        session = WhatsAppSession.objects.get(number_id=self.number.pk)
        try:
            reason = reconnect_loop(self, self.lease, session.reconnect_attempts)
        finally:
            if self.adapter is not None:
                self.adapter.stop()
        logger.info("whatsapp: number=%s session ended (%s)", self.number.pk, reason)
        return reason

    # -- what reconnect_loop asks

    @property
    def max_attempts(self) -> int:
        return settings.CONNECTION_MAX_RECONNECT_ATTEMPTS

    def connect_once(self, attempts: int) -> str:
        status = Status.STARTING if attempts == 0 else Status.RECONNECTING
        self._write(status=status, holder=self.lease.token)
        logger.info("whatsapp: number=%s connecting (attempt %s)", self.number.pk, attempts)
        return self._connect_and_watch()

    def take_restart(self) -> bool:
        if not self.restart_requested:
            return False
        self.restart_requested, self.qr_count = False, 0
        return True

    def on_give_up(self, error: str, attempts: int) -> None:
        metrics.record_error(error, self.number.company_id)
        write_failure(self.lease, error, attempts, Status.FAILED, updated_at=timezone.now())
        WhatsAppNumber.objects.filter(pk=self.number.pk).update(
            status=WhatsAppNumber.Status.ERROR, last_error=error
        )
        metrics.increment("failed_reconnects", self.number.company_id)
        publish_to_admins(
            "whatsapp.reconnect_failed", self.number, {"attempts": attempts, "error": error}
        )
        logger.error("whatsapp: number=%s failed after %s attempts", self.number.pk, attempts)

    def on_retry(self, error: str, attempts: int, delay: float) -> None:
        metrics.record_error(error, self.number.company_id)
        channel_metrics.increment(KIND, "reconnect_attempts")
        write_failure(
            self.lease, error, attempts, Status.RECONNECTING, delay, updated_at=timezone.now()
        )
        publish_to_admins(
            "whatsapp.error",
            self.number,
            {"error": error, "attempt": attempts, "retry_in_seconds": round(delay, 2)},
        )
        logger.warning(
            "whatsapp: number=%s connection failed (attempt %s), retry in %.1fs",
            self.number.pk,
            attempts,
            delay,
        )

    def idle(self, seconds: float) -> bool:
        """Serve commands while backing off: a restart or a stop ends the wait at once."""
        self._serve_commands(seconds)
        return not (self.stop_reason or self.restart_requested)

    def _connect_and_watch(self) -> str:
        """Run one connection until it ends; returns why it failed ("" when it was asked
        to stop)."""
        factory = import_string(settings.WHATSAPP_WEB_ADAPTER)
        try:
            self.adapter = factory(self.number.pk, self.number.web_jid, self)
        except Exception as exc:
            logger.exception("whatsapp: number=%s adapter could not start", self.number.pk)
            return f"The WhatsApp client could not start: {exc}"
        outcome: dict = {}

        def connect():
            try:
                self.adapter.connect()
            except Exception as exc:  # the adapter's own failure, reported below
                outcome["error"] = str(exc) or exc.__class__.__name__

        thread = threading.Thread(target=connect, name=f"whatsapp-{self.number.pk}", daemon=True)
        thread.start()
        renew_every = settings.CONNECTION_LEASE_SECONDS / 3
        last_renew = last_beat = last_check = time.monotonic()
        while thread.is_alive():
            now = time.monotonic()
            if now - last_renew >= renew_every:
                if not self.lease.renew():
                    self._stop("lease_lost")
                    break
                last_renew = now
            if now - last_check >= 2.0:
                last_check = now
                if self.stop_wanted():
                    self._stop("stopped")
                    break
            if now - last_beat >= settings.CONNECTION_HEARTBEAT_SECONDS and self._alive():
                self._write(last_heartbeat_at=timezone.now())
                last_beat = now
            self._serve_commands(0.5)
            if self.stop_reason or self.restart_requested:
                self.adapter.stop()
                break
        thread.join(timeout=15)
        return self._outcome(outcome)

    def _outcome(self, outcome: dict) -> str:
        """Why one connection ended ("" when asked to stop)."""
        if self.stop_reason or self.restart_requested:
            return ""
        error, self.callback_error = self.callback_error, ""
        return error or outcome.get("error") or "The WhatsApp connection closed."

    def _alive(self) -> bool:
        try:
            return self.adapter.is_connected()
        except Exception:
            return False

    def stop_wanted(self) -> bool:
        if SHUTDOWN.is_set():
            self.stop_reason = self.stop_reason or "shutdown"
            return True
        if self.stop_reason:
            return True
        row = (
            WhatsAppSession.objects.filter(number_id=self.number.pk)
            .values("status", "number__is_active", "number__status", "number__company__is_active")
            .first()
        )
        if (
            row is None
            or not row["number__is_active"]
            or not row["number__company__is_active"]
            or row["number__status"] == WhatsAppNumber.Status.DELETING
            or row["status"] not in WhatsAppSession.WANTED
        ):
            self.stop_reason = "stopped"
            return True
        return False

    # -- commands from other processes

    def _serve_commands(self, timeout: float) -> None:
        try:
            command = next_command(KIND, self.number.pk, timeout)
        except redis.RedisError:
            time.sleep(timeout)
            return
        if command is not None:
            self._handle(command)

    def _handle(self, command: dict) -> None:
        op = command.get("op")
        if op == "send":
            self._send(command)
        elif op == "react":
            self._react(command)
        elif op == "download":
            self._download(command)
        elif op == "logout":
            self._guarded(self._logout)
        elif op == "restart":
            self.restart_requested = True
        elif op == "stop":
            self._stop("stopped")

    def _send(self, command: dict) -> None:
        key = command["key"]
        if sent := sending.sent_record(key):
            reply = {"id": sent}
        elif self.adapter is None or not self._alive():
            reply = {"error": "The WhatsApp session is not connected."}
        else:
            try:
                wamid = self._send_parts(command)
                sending.record_sent(key, wamid)
                reply = {"id": wamid}
            except Exception as exc:
                logger.warning("whatsapp: number=%s send failed", self.number.pk)
                reply = {"error": f"WhatsApp refused the message: {exc}"}
        answer(command["reply"], reply)

    def _react(self, command: dict) -> None:
        # A reaction replaces ours on the message at WhatsApp: sending it again is harmless,
        # so no sent-record is kept.
        if self.adapter is None or not self._alive():
            reply = {"error": "The WhatsApp session is not connected."}
        else:
            try:
                self.adapter.send_reaction(command["to"], command["target"], command["emoji"])
                reply = {"id": "reacted"}
            except Exception as exc:
                logger.warning("whatsapp: number=%s reaction failed", self.number.pk)
                reply = {"error": f"WhatsApp refused the reaction: {exc}"}
        answer(command["reply"], reply)

    def _send_parts(self, command: dict) -> str:
        """A text, or each file (the text as the first's caption): each part once (its
        record), the first quoting `quoted`; returns the first part's id."""
        to, body, quoted = command["to"], command["body"], command.get("quoted", "")
        files = [OutboundFile(**file) for file in command.get("files", [])]
        if not files:
            return self.adapter.send_text(to, body, quoted=quoted)
        parts = []
        if body and files[0].kind == "audio":  # a voice note takes no caption
            parts.append(lambda q, text=body: self.adapter.send_text(to, text, quoted=q))
            body = ""
        for index, file in enumerate(files):
            caption = body if index == 0 else ""
            parts.append(
                lambda q, file=file, caption=caption: self.adapter.send_file(
                    to, file, caption=caption, quoted=q
                )
            )
        receipts = [lambda q, part=part: SendReceipt(part(q)) for part in parts]
        return sending.send_parts(command["key"], receipts, quoted)

    def _download(self, command: dict) -> None:
        if self.adapter is None or not self._alive():
            reply = {"error": "The WhatsApp session is not connected; try again."}
        else:
            try:
                self.adapter.download(command["ref"], command["path"])
                reply = {"ok": True}
            except Exception as exc:
                logger.warning("whatsapp: number=%s download failed", self.number.pk)
                reply = {"error": f"WhatsApp refused the download: {exc}"}
        answer(command["reply"], reply)

    def _logout(self) -> None:
        if self.adapter is not None:
            try:
                self.adapter.logout()
            except Exception:
                logger.warning("whatsapp: number=%s logout call failed", self.number.pk)
        self.on_logged_out(ADMIN_LOGOUT)

    # -- adapter callbacks (SessionCallbacks)

    def on_qr(self, code: str) -> None:
        self._guarded(self._on_qr, code)

    def _on_qr(self, code: str) -> None:
        self.qr_count += 1
        if self.qr_count > settings.WHATSAPP_QR_MAX:
            error = "The QR code was not scanned in time; start again to get a new one."
            self._write(status=Status.QR_TIMEOUT, last_error=error, last_error_at=timezone.now())
            publish_to_admins("whatsapp.error", self.number, {"error": error})
            notify_admins_of_failure(self.lease, error)
            self.redis.delete(_qr_key(self.number.pk))
            self._stop("qr_timeout")
            return
        self._write(status=Status.QR)
        self.redis.set(_qr_key(self.number.pk), code, ex=120)
        metrics.increment("qr_generated", self.number.company_id)
        publish_to_admins(
            "whatsapp.qr",
            self.number,
            {
                **qr_payload(code),
                "status": Status.QR,
                "status_label": label_for(WhatsAppSession, Status.QR),
            },
        )
        logger.info("whatsapp: number=%s QR %s shown", self.number.pk, self.qr_count)

    def on_paired(self, jid: str) -> None:
        self._guarded(self._on_paired, jid)

    def _on_paired(self, jid: str) -> None:
        if not self.lease.holds():
            raise LeaseLost("paired without the lease")
        WhatsAppNumber.objects.filter(pk=self.number.pk).update(web_jid=jid)
        self.number.web_jid = jid
        logger.info("whatsapp: number=%s paired", self.number.pk)

    def on_connected(self) -> None:
        self._guarded(self._on_connected)

    def _on_connected(self) -> None:
        self.qr_count = 0
        self.connected = True
        self.lease.write_connected(updated_at=timezone.now())
        WhatsAppNumber.objects.filter(pk=self.number.pk).update(
            status=WhatsAppNumber.Status.CONNECTED, last_error=""
        )
        self.redis.delete(_qr_key(self.number.pk))
        publish_to_admins(
            "whatsapp.connected",
            self.number,
            {
                "status": Status.CONNECTED,
                "status_label": label_for(WhatsAppSession, Status.CONNECTED),
            },
        )
        logger.info("whatsapp: number=%s connected", self.number.pk)

    def on_logged_out(self, reason: str) -> None:
        self._guarded(self._on_logged_out, reason)

    def _on_logged_out(self, reason: str) -> None:
        self._write(status=Status.LOGGED_OUT, last_error=reason, last_error_at=timezone.now())
        forget_device(self.number.web_jid)
        WhatsAppNumber.objects.filter(pk=self.number.pk).update(
            web_jid="", status=WhatsAppNumber.Status.DISCONNECTED
        )
        publish_to_admins("whatsapp.logout", self.number, {"reason": reason})
        if reason != ADMIN_LOGOUT:  # an admin's own logout is no failure to tell them of
            notify_admins_of_failure(
                self.lease, f"Logged out ({reason}); scan a new QR code to link the number again."
            )
        logger.warning("whatsapp: number=%s logged out; a new QR scan is needed", self.number.pk)
        self._stop("logged_out")

    def on_replaced(self) -> None:
        self._guarded(self._on_replaced)

    def _on_replaced(self) -> None:
        # Another socket on the same credentials (WhatsApp's 440 "conflict"): fighting it
        # gets the device unlinked, so stop and let an admin decide.
        error = "Another connection took over this number (stream replaced)."
        self._write(status=Status.FAILED, last_error=error, last_error_at=timezone.now())
        publish_to_admins("whatsapp.error", self.number, {"error": error})
        notify_admins_of_failure(self.lease, error)
        self._stop("replaced")

    def on_message(self, message) -> None:
        self._guarded(self._on_message, message, fatal=False)

    def on_receipt(self, receipt) -> None:
        self._guarded(self._on_receipt, receipt, fatal=False)

    def _on_receipt(self, receipt) -> None:
        """Delivered / read reports from the customer's phone move our messages and the
        number's broadcast recipients forward, as Cloud status webhooks do."""
        with transaction.atomic():
            apply_delivery_reports(
                self.number, [(wamid, receipt.status, "") for wamid in receipt.wamids]
            )

    def _on_message(self, message) -> None:
        action = getattr(message, "action", "message")
        if action == "reaction":
            record_customer_reaction(self.number, message.phone, message.target, message.emoji)
            return
        if action == "edit":
            record_inbound_edit(self.number, message.phone, message.target, message.body)
            return
        if action == "revoke":
            mark_inbound_deleted(self.number, [message.target], message.phone)
            return
        content = getattr(message, "content", None)
        inbound = whatsapp_inbound(
            wamid=message.wamid,
            phone_digits=message.phone,
            name=message.name,
            body=message.body,
            received_at=message.timestamp,
            media=message.media,
            metadata={
                **({"content": content} if content else {}),
                **({"raw": message.raw} if getattr(message, "raw", None) else {}),
            },
        )
        [result] = ingest_whatsapp_messages(self.number, [inbound])
        if result.created:
            publish_to_admins(
                "whatsapp.message",
                self.number,
                {"conversation_id": result.conversation.pk, "message_id": result.message.pk},
            )


def run_session(number_id: int) -> str:
    """Hold the number's session until it stops; "held" when another worker has it."""
    return run_while_held(
        SessionLease.acquire(number_id),
        KIND,
        number_id,
        lambda lease: SessionRunner(number_id, lease).run(),
    )


# ---------------------------------------------------------------- the supervisor


def supervise() -> dict:
    """Start wanted sessions nobody holds (once their backoff has passed) and health-check
    held ones. Returns what it did, by number id."""
    run_whatsapp_session = task("channels_integrations.whatsapp.tasks.run_whatsapp_session")

    now = timezone.now()
    done = {"started": [], "unhealthy": []}
    sessions = WhatsAppSession.objects.filter(
        status__in=WhatsAppSession.WANTED,
        number__provider=WhatsAppNumber.Provider.WEB,
        number__is_active=True,
        number__company__is_active=True,
    ).exclude(number__status=WhatsAppNumber.Status.DELETING)
    for session in sessions.select_related("number"):
        number_id = session.number_id
        if holder_of(number_id) is None:
            if session.next_attempt_at and session.next_attempt_at > now:
                continue  # backing off
            if request_start(KIND, number_id, run_whatsapp_session):
                done["started"].append(number_id)
                logger.info("whatsapp supervisor: number=%s has no holder; starting", number_id)
            continue
        if session.status == Status.CONNECTED and _unhealthy(session):
            done["unhealthy"].append(number_id)
    return done


def health_check() -> list[int]:
    """Connected, held sessions whose heartbeat is late are told to restart (the fleet's
    supervisor places them; this checks them)."""
    sessions = WhatsAppSession.objects.filter(
        status=Status.CONNECTED, number__provider=WhatsAppNumber.Provider.WEB
    ).select_related("number")
    return [
        session.number_id
        for session in sessions
        if holder_of(session.number_id) and _unhealthy(session)
    ]


def _unhealthy(session: WhatsAppSession) -> bool:
    healthy, detail = health(session)
    if healthy:
        return False
    number_id = session.number_id
    with translation.override("en"):
        english = str(detail)
    metrics.record_error(english, session.number.company_id)
    publish_to_admins("whatsapp.health_check_failed", session.number, {"detail": detail})
    send_command(KIND, number_id, {"op": "restart"})
    logger.warning("whatsapp supervisor: number=%s unhealthy: %s", number_id, english)
    return True
