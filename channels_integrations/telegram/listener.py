"""One supervised Telethon client per active Telegram account (the mechanism of
channels_integrations.connections: a fenced Redis lease, beat's supervisor, backoff, SIGTERM).

The listener is a long Celery task (run_telegram_listener, `connections` queue) that runs an
asyncio loop in its thread: connect (bounded by TELEGRAM_CONNECT_TIMEOUT), check the session
is authorised, catch up on what was missed while away (Telethon's getDifference; the
idempotent ingest drops replays), then listen: new private messages, edits, deletions. Replies
from the inbox reach it as commands (send) and go out through the same client; FLOOD_WAIT is
answered with its seconds, so the message waits and goes out after the delay.
ORM work runs on one executor thread per listener (one database connection each).
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import close_old_connections, connection
from django.utils import timezone
from telethon.tl.types import DocumentAttributeFilename

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

from .. import channel_metrics
from ..connections import (
    SHUTDOWN,
    ConnectionLease,
    LeaseLost,
    Supervised,
    answer,
    ask_holder,
    download_through_holder,
    holder_of,
    next_command,
    notify_admins_of_failure,
    publish_to_admins,
    reconnect_loop,
    request_start,
    run_while_held,
    stop_holder,
    write_failure,
)
from ..models import TelegramAccount
from . import inbound
from .client import make_client

logger = logging.getLogger(__name__)
KIND = "telegram:account"
Status = TelegramAccount.Status

UNAUTHORISED_ERRORS = (
    "AuthKeyUnregisteredError",
    "AuthKeyInvalidError",
    "SessionRevokedError",
    "SessionExpiredError",
    "UserDeactivatedError",
    "UserDeactivatedBanError",
    "AuthKeyDuplicatedError",
    "UnauthorizedError",
)


class LoggedOut(Exception):
    """The stored session is not (or no longer) authorised: a new log-in is needed."""


def _is_unauthorised(exc: BaseException) -> bool:
    return any(cls.__name__ in UNAUTHORISED_ERRORS for cls in type(exc).__mro__)


def _flood_wait_seconds(exc: BaseException) -> int | None:
    if any(cls.__name__ == "FloodWaitError" for cls in type(exc).__mro__):
        return int(getattr(exc, "seconds", 0) or 0)
    return None


def account_holder(account_id: int) -> str | None:
    return holder_of(KIND, account_id)


# ---------------------------------------------------------------- sending via the holder


def send_through_listener(
    account_id: int,
    key: str,
    peer_id: str,
    body: str,
    *,
    quoted: str = "",
    files: tuple[OutboundFile, ...] = (),
):
    """Hand a reply to the worker holding the account's client and wait for its answer; a
    send it already made (a retried task) is answered from its record (messaging.sending).
    `quoted`: the Telegram id of a message to reply to; `files` go out with send_file, the
    text as the first one's caption, each once."""
    if account_holder(account_id) is None:
        raise TransientSendError("The Telegram account is not connected.")
    command = {"op": "send", "key": key, "peer": peer_id, "body": body, "quoted": quoted}
    if files:
        command["files"] = [asdict(file) for file in files]
    reply = ask_holder(
        KIND,
        account_id,
        command,
        timeout=settings.TELEGRAM_SEND_TIMEOUT * (1 + len(files)),
    )
    if reply is None:
        raise TransientSendError("The Telegram listener did not answer in time.")
    if "id" in reply:
        return SendReceipt(external_id=str(reply["id"]))
    if "flood_wait" in reply:
        seconds = reply["flood_wait"]
        raise TransientSendError(
            f"Telegram asks to wait {seconds} s (flood control); the message goes out then.",
            retry_after=seconds + 1,
        )
    raise SendError(reply.get("error") or "Telegram refused the message.")


def react_through_listener(account_id: int, peer_id: str, target: str, emoji: str) -> None:
    """Hand our reaction on the client's message `target` to the account's holder."""
    if account_holder(account_id) is None:
        raise TransientSendError("The Telegram account is not connected.")
    command = {"op": "react", "peer": peer_id, "target": target, "emoji": emoji}
    reply = ask_holder(KIND, account_id, command, timeout=settings.TELEGRAM_SEND_TIMEOUT)
    if reply is None:
        raise TransientSendError("The Telegram listener did not answer in time.")
    if "flood_wait" in reply:
        raise TransientSendError(f"Telegram asks to wait {reply['flood_wait']} s (flood control).")
    if "error" in reply:
        raise SendError(reply["error"])


def download_through_listener(
    account_id: int, peer_id: int, message_id: int, max_bytes: int, destination
) -> str:
    """Ask the worker holding the account's client to download message `message_id`'s file
    (Telethon's download_media, in parts) into a spool file of our storage, then copy it into
    `destination` in chunks and remove the spool file. Returns "" (Telegram said the type when
    it announced the file)."""
    if account_holder(account_id) is None:
        raise DownloadError("The Telegram account is not connected; try again when it is.")
    download_through_holder(
        KIND,
        account_id,
        {"op": "download", "peer": peer_id, "message": message_id},
        timeout=settings.TELEGRAM_SEND_TIMEOUT * 6,
        max_bytes=max_bytes,
        destination=destination,
        no_answer="The Telegram listener did not answer in time; try again.",
    )
    return ""


# ---------------------------------------------------------------- the holder


class TelegramListener(Supervised):
    def __init__(self, account_id: int, lease: ConnectionLease):
        self.account_id = account_id
        self.lease = lease
        self.account = TelegramAccount.objects.get(pk=account_id)
        self.client = None
        self.stop_reason: str | None = None
        self.catching_up = False
        self.caught_up = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"telegram-{account_id}-db")

    async def _db(self, function, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    def _write(self, **fields) -> None:
        self.lease.write(**fields)

    def _stop_wanted_sync(self) -> bool:
        if SHUTDOWN.is_set():
            self.stop_reason = self.stop_reason or "shutdown"
        if self.stop_reason:
            return True
        close_old_connections()
        row = (
            TelegramAccount.objects.filter(pk=self.account_id)
            .values("is_active", "status", "company__is_active")
            .first()
        )
        if (
            row is None
            or not row["is_active"]
            or not row["company__is_active"]
            or row["status"] not in TelegramAccount.WANTED
        ):
            self.stop_reason = "stopped"
            return True
        return False

    def _publish(self, event: str, data: dict) -> None:
        publish_to_admins(self.account.company_id, event, {"account_id": self.account_id, **data})

    # -- the loop

    def run(self) -> str:
        try:
            reason = reconnect_loop(self, self.lease, self.account.reconnect_attempts)
        finally:
            self._executor.submit(lambda: connection.close()).result()  # its own connection
            self._executor.shutdown()
        logger.info("telegram: account=%s listener ended (%s)", self.account_id, reason)
        return reason

    # -- what reconnect_loop asks

    @property
    def max_attempts(self) -> int:
        return settings.CONNECTION_MAX_RECONNECT_ATTEMPTS

    def stop_wanted(self) -> bool:
        return self._stop_wanted_sync()

    def connect_once(self, attempts: int) -> str:
        logger.info("telegram: account=%s connecting", self.account_id)
        return asyncio.run(self._connect_and_listen())  # a fresh loop and client per connection

    def on_give_up(self, error: str, attempts: int) -> None:
        channel_metrics.increment(KIND, "errors")
        write_failure(self.lease, error, attempts, Status.ERROR)
        self._publish("telegram.error", {"error": error, "gave_up": True})
        logger.error("telegram: account=%s gave up after %s attempts", self.account_id, attempts)

    def on_retry(self, error: str, attempts: int, delay: float) -> None:
        channel_metrics.increment(KIND, "errors")
        channel_metrics.increment(KIND, "reconnect_attempts")
        write_failure(self.lease, error, attempts, Status.RECONNECTING, delay)
        self._publish(
            "telegram.error",
            {"error": error, "attempt": attempts, "retry_in_seconds": round(delay, 2)},
        )
        logger.warning(
            "telegram: account=%s disconnected (attempt %s), retry in %.1fs",
            self.account_id,
            attempts,
            delay,
        )

    async def _connect_and_listen(self) -> str:
        """One connection until it ends; returns why it failed ("" when asked to stop)."""
        from telethon import events
        from telethon.tl import types

        account = self.account
        try:
            client = make_client(account.session_string, account.api_id, account.api_hash)
        except Exception as exc:
            return f"The Telegram client could not start: {exc}"
        self.client = client
        client.add_event_handler(self._on_new_message, events.NewMessage(incoming=True))
        client.add_event_handler(self._on_edited, events.MessageEdited(incoming=True))
        client.add_event_handler(self._on_deleted, events.MessageDeleted())
        client.add_event_handler(self._on_reactions, events.Raw(types.UpdateMessageReactions))
        try:
            try:
                await asyncio.wait_for(client.connect(), settings.TELEGRAM_CONNECT_TIMEOUT)
            except TimeoutError:
                return (
                    "Telegram could not be reached "
                    f"(no answer within {settings.TELEGRAM_CONNECT_TIMEOUT:g} s)."
                )
            if not await client.is_user_authorized():
                raise LoggedOut("The stored session is not authorised.")
            await self._on_connected()
            self.catching_up, self.caught_up = True, 0
            await client.catch_up()
            self.catching_up = False
            logger.info("telegram: account=%s catch-up %s", self.account_id, self.caught_up)
            await self._watch()
            return "" if self.stop_reason else "The connection to Telegram closed."
        except LeaseLost:
            raise
        except Exception as exc:
            if isinstance(exc, LoggedOut) or _is_unauthorised(exc):
                await self._db(self._logged_out, str(exc) or exc.__class__.__name__)
                return ""
            logger.warning(
                "telegram: account=%s connection failed: %s",
                self.account_id,
                exc.__class__.__name__,
            )
            return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__
        finally:
            try:
                await asyncio.wait_for(client.disconnect(), 5)
            except Exception:
                logger.debug("telegram: account=%s disconnect failed", self.account_id)
            logger.info("telegram: account=%s disconnected", self.account_id)

    async def _watch(self) -> None:
        renew_every = settings.CONNECTION_LEASE_SECONDS / 3
        last_renew = last_beat = last_check = time.monotonic()
        while self.client.is_connected():
            now = time.monotonic()
            if now - last_renew >= renew_every:
                if not await self._db(self.lease.renew):
                    self.stop_reason = "lease_lost"
                    return
                last_renew = now
            if now - last_check >= 2.0:
                last_check = now
                if await self._db(self._stop_wanted_sync):
                    return
            if now - last_beat >= settings.CONNECTION_HEARTBEAT_SECONDS:
                await self._db(self._write, last_heartbeat_at=timezone.now())
                last_beat = now
            command = await self._db(next_command, KIND, self.account_id, 0.2)
            if command is not None:
                await self._serve(command)
            if SHUTDOWN.is_set():
                self.stop_reason = "shutdown"
                return

    async def _serve(self, command: dict) -> None:
        if command.get("op") == "stop":
            self.stop_reason = "stopped"
        elif command.get("op") == "send":
            reply = await self._send(command)
            await self._db(answer, command["reply"], reply)
        elif command.get("op") == "react":
            reply = await self._react(command)
            await self._db(answer, command["reply"], reply)
        elif command.get("op") == "download":
            reply = await self._download(command)
            await self._db(answer, command["reply"], reply)

    async def _react(self, command: dict) -> dict:
        """Our reaction on the client's message (none: remove ours). Sending the current state
        again is harmless, so no sent-record is kept."""
        from telethon.tl.functions.messages import SendReactionRequest
        from telethon.tl.types import ReactionEmoji

        emoji = command["emoji"]
        request = SendReactionRequest(
            peer=int(command["peer"]),
            msg_id=int(command["target"]),
            reaction=[ReactionEmoji(emoticon=emoji)] if emoji else [],
        )
        try:
            await self.client(request)
        except Exception as exc:
            if (seconds := _flood_wait_seconds(exc)) is not None:
                return {"flood_wait": seconds}
            logger.warning("telegram: account=%s reaction failed", self.account_id)
            return {"error": f"Telegram refused the reaction: {exc.__class__.__name__}"}
        return {"id": "reacted"}

    async def _download(self, command: dict) -> dict:
        """One file of a message, downloaded by Telethon (in parts) to `path`."""
        try:
            message = await self.client.get_messages(int(command["peer"]), ids=command["message"])
            if message is None or not getattr(message, "media", None):
                return {"error": "Telegram no longer has this message or its file."}
            await self.client.download_media(message, file=command["path"])
        except Exception as exc:
            if (seconds := _flood_wait_seconds(exc)) is not None:
                return {"error": f"Telegram asks to wait {seconds} s (flood control); try again."}
            logger.warning("telegram: account=%s download failed", self.account_id)
            return {"error": f"Telegram refused the download: {exc.__class__.__name__}"}
        logger.info("telegram: account=%s downloaded a file", self.account_id)
        return {"ok": True}

    async def _send(self, command: dict) -> dict:
        key = command["key"]
        if sent := await self._db(sending.sent_record, key):
            return {"id": sent}
        try:
            sent_id = await self._send_parts(command)
        except Exception as exc:
            if (seconds := _flood_wait_seconds(exc)) is not None:
                logger.warning("telegram: account=%s flood wait %ss", self.account_id, seconds)
                return {"flood_wait": seconds}
            if _is_unauthorised(exc):
                await self._db(self._logged_out, exc.__class__.__name__)
                return {"error": "The Telegram session was revoked; log in again."}
            logger.warning("telegram: account=%s send failed", self.account_id)
            return {"error": f"Telegram refused the message: {exc.__class__.__name__}"}
        await self._db(sending.record_sent, key, str(sent_id))
        channel_metrics.increment(KIND, "messages_sent")
        logger.info("telegram: account=%s sent %s", self.account_id, key)
        return {"id": sent_id}

    async def _send_parts(self, command: dict):
        """The text (replying to `quoted`), or each file by send_file (streamed from its
        path by Telethon in parts; the text as the first's caption), each part once."""
        peer, body = int(command["peer"]), command["body"]
        quoted = command.get("quoted") or ""
        reply_to = int(quoted) if quoted.isdigit() else None
        files = [OutboundFile(**file) for file in command.get("files", [])]
        if not files:
            return (await self.client.send_message(peer, body, reply_to=reply_to)).id
        first = None
        for index, file in enumerate(files):
            part = sending.part_key(command["key"], index)
            if sent := await self._db(sending.sent_record, part):
                first = first or sent
                continue
            sent_message = await self.client.send_file(
                peer,
                default_storage.path(file.storage_name),
                caption=body if index == 0 else "",
                reply_to=reply_to if index == 0 else None,
                force_document=file.kind == "document",
                voice_note=file.kind in ("audio", "voice") and file.content_type == "audio/ogg",
                mime_type=file.content_type,
                file_size=file.size,
                attributes=[DocumentAttributeFilename(file.filename)],
            )
            await self._db(sending.record_sent, part, str(sent_message.id))
            first = first or sent_message.id
        return first

    # -- state changes

    async def _on_connected(self) -> None:
        self.connected = True

        def write():
            self.lease.write_connected()
            self._publish(
                "telegram.connected",
                {
                    "status": Status.CONNECTED,
                    "status_label": label_for(TelegramAccount, Status.CONNECTED),
                },
            )

        await self._db(write)
        logger.info("telegram: account=%s connected", self.account_id)

    def _logged_out(self, reason: str) -> None:
        self.stop_reason = "logged_out"
        self._write(
            status=Status.LOGGED_OUT,
            last_error="The Telegram session is no longer authorised; log in again.",
            last_error_at=timezone.now(),
        )
        self._publish("telegram.logout", {"reason": reason})
        notify_admins_of_failure(
            self.lease, "The Telegram session is no longer authorised; log in again."
        )
        logger.warning("telegram: account=%s logged out (%s)", self.account_id, reason)

    # -- Telethon event handlers

    async def _on_new_message(self, event) -> None:
        if not event.is_private:
            return  # groups and channels are not inbox conversations
        sender = await event.get_sender()
        if sender is None or getattr(sender, "bot", False):
            return
        item = inbound.from_event(event.message, sender)
        created = await self._db(self._guarded, inbound.ingest_telegram, self.account, item)
        if created:
            channel_metrics.increment(KIND, "messages_received")
        if created and self.catching_up:
            self.caught_up += 1
        logger.info(
            "telegram: account=%s received message (%s)",
            self.account_id,
            "new" if created else "duplicate",
        )

    async def _on_edited(self, event) -> None:
        if not event.is_private:
            return
        message = event.message
        await self._db(
            self._guarded,
            inbound.apply_edit,
            self.account,
            event.chat_id,
            message.id,
            message.message or "",
        )

    async def _on_reactions(self, update) -> None:
        found = inbound.customer_reaction(update)
        if found is not None:
            await self._db(self._guarded, inbound.apply_reaction, self.account, *found)

    async def _on_deleted(self, event) -> None:
        await self._db(self._guarded, inbound.apply_deletion, self.account, event.deleted_ids)

    def _guarded(self, function, *args):
        """Inbox writes from event handlers: a failure is logged, never kills the client."""
        close_old_connections()
        try:
            return function(*args)
        except Exception:
            logger.exception("telegram: account=%s could not store an event", self.account_id)
            return None


def run_listener(account_id: int) -> str:
    """Hold the account's client until it stops; "held" when another worker has it."""
    return run_while_held(
        ConnectionLease.acquire(KIND, TelegramAccount, "pk", account_id),
        KIND,
        account_id,
        lambda lease: TelegramListener(account_id, lease).run(),
    )


# ---------------------------------------------------------------- the supervisor


def supervise() -> dict:
    """Start listeners of active accounts with a session that nobody holds (once their
    backoff has passed); flag held ones whose heartbeat is late."""
    run_telegram_listener = task("channels_integrations.telegram.tasks.run_telegram_listener")

    now = timezone.now()
    done = {"started": [], "unhealthy": []}
    accounts = TelegramAccount.objects.filter(
        is_active=True,
        company__is_active=True,
        status__in=TelegramAccount.WANTED,
        session_string__isnull=False,
    ).only("pk", "company_id", "status", "next_attempt_at", "last_heartbeat_at")
    for account in accounts:
        if account_holder(account.pk) is None:
            if account.next_attempt_at and account.next_attempt_at > now:
                continue
            if request_start(KIND, account.pk, run_telegram_listener):
                done["started"].append(account.pk)
                logger.info("telegram supervisor: account=%s has no holder; starting", account.pk)
        elif account.status == Status.CONNECTED and account.last_heartbeat_at:
            age = (now - account.last_heartbeat_at).total_seconds()
            if age > settings.CONNECTION_HEARTBEAT_MAX_AGE:
                done["unhealthy"].append(account.pk)
                publish_to_admins(
                    account.company_id,
                    "telegram.error",
                    {"account_id": account.pk, "error": f"No heartbeat for {age:.0f} s."},
                )
    return done


def stop_listener(account_id: int) -> None:
    stop_holder(KIND, account_id)


def start_now(account_id: int) -> None:
    """A fresh session (log-in, pasted string): start it without waiting for the supervisor."""
    run_telegram_listener = task("channels_integrations.telegram.tasks.run_telegram_listener")

    try:
        if account_holder(account_id) is None:
            request_start(KIND, account_id, run_telegram_listener)
    except Exception:  # the supervisor starts it at its next round anyway
        logger.warning("telegram: account=%s not started now; the supervisor will", account_id)
