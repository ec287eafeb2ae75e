"""Logging a Telegram user account in from Switchboard: send code -> the code -> the 2FA
password when the account has one -> the string session is stored (encrypted). Between the
steps, the half-done session and Telegram's code hash wait in `login_state` (encrypted too).
Each of Telegram's refusals is said in words, on the field it concerns."""

import asyncio
import json
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from ..models import TelegramAccount
from .client import make_client

logger = logging.getLogger(__name__)

REASONS = {
    "PhoneCodeInvalidError": ("code", "The code is not right; check it and try again."),
    "PhoneCodeEmptyError": ("code", "Enter the code Telegram sent."),
    "PhoneCodeExpiredError": ("code", "The code has expired; send a new one."),
    "PasswordHashInvalidError": ("password", "The password is wrong."),
    "PhoneNumberInvalidError": ("phone", "Telegram does not know this phone number."),
    "PhoneNumberBannedError": ("phone", "Telegram has banned this phone number."),
    "ApiIdInvalidError": ("api_id", "api_id and api_hash do not match (see my.telegram.org)."),
}


def _refusal(exc: BaseException, field: str) -> ValidationError:
    name = type(exc).__name__
    if name == "FloodWaitError":
        seconds = int(getattr(exc, "seconds", 0) or 0)
        return ValidationError(
            {
                field: [
                    _("Telegram asks to wait %(seconds)s seconds before trying again.")
                    % {"seconds": seconds}
                ]
            }
        )
    if name in REASONS:
        where, words = REASONS[name]
        return ValidationError({where: [words]})
    if isinstance(exc, TimeoutError | OSError | ConnectionError):
        return ValidationError({field: [_("Telegram could not be reached; try again later.")]})
    return ValidationError({field: [_("Telegram refused: %(name)s.") % {"name": name}]})


async def _with_client(session: str, account: TelegramAccount, work):
    client = make_client(session, account.api_id, account.api_hash)
    await asyncio.wait_for(client.connect(), settings.TELEGRAM_CONNECT_TIMEOUT)
    try:
        return await work(client)
    finally:
        await client.disconnect()


def _run(session: str, account: TelegramAccount, work, field: str):
    try:
        return asyncio.run(_with_client(session, account, work))
    except ValidationError:
        raise
    except Exception as exc:
        logger.warning("telegram login: account=%s %s refused", account.pk, field)
        raise _refusal(exc, field) from None


def _state(account: TelegramAccount, step: str) -> dict:
    try:
        state = json.loads(account.login_state or "{}")
    except ValueError:
        state = {}
    if state.get("step") != step:
        field = "code" if step == "code" else "password"
        raise ValidationError(
            {field: [_("No log-in is waiting for this step; send a code first.")]}
        )
    return state


def login_step(account: TelegramAccount) -> str | None:
    """The step a log-in in progress waits for ("code", "password"), else None."""
    try:
        return json.loads(account.login_state or "{}").get("step")
    except ValueError:
        return None


def _save_state(account: TelegramAccount, **state) -> None:
    account.login_state = json.dumps(state) if state else None
    account.save(update_fields=["login_state"])


def send_code(actor, account: TelegramAccount) -> None:
    """Ask Telegram to send a log-in code to the account's phone (the Telegram app)."""

    async def work(client):
        sent = await client.send_code_request(str(account.phone))
        return client.session.save(), sent.phone_code_hash

    session, code_hash = _run("", account, work, "phone")
    _save_state(account, step="code", session=session, phone_code_hash=code_hash)
    logger.info("telegram login: account=%s code sent by user=%s", account.pk, actor.pk)


def submit_code(actor, account: TelegramAccount, code: str) -> str:
    """ "connected", or "password_needed" when the account has two-step verification."""
    state = _state(account, "code")
    code = (code or "").strip().replace(" ", "")
    if not code:
        raise ValidationError({"code": [_("Enter the code Telegram sent.")]})

    async def work(client):
        try:
            await client.sign_in(
                phone=str(account.phone), code=code, phone_code_hash=state["phone_code_hash"]
            )
        except Exception as exc:
            if type(exc).__name__ == "SessionPasswordNeededError":
                return "password_needed", client.session.save()
            raise
        return "connected", client.session.save()

    outcome, session = _run(state["session"], account, work, "code")
    if outcome == "password_needed":
        _save_state(account, step="password", session=session)
        logger.info("telegram login: account=%s needs its 2FA password", account.pk)
        return outcome
    _connected(account, session, actor)
    return outcome


def submit_password(actor, account: TelegramAccount, password: str) -> str:
    state = _state(account, "password")
    if not password:
        raise ValidationError(
            {"password": [_("Enter the account's two-step verification password.")]}
        )

    async def work(client):
        await client.sign_in(password=password)
        return client.session.save()

    session = _run(state["session"], account, work, "password")
    _connected(account, session, actor)
    return "connected"


def _connected(account: TelegramAccount, session: str, actor) -> None:
    from .listener import start_now

    with transaction.atomic():
        account.session_string = session
        account.login_state = None
        account.status = TelegramAccount.Status.NEW
        account.reconnect_attempts = 0
        account.next_attempt_at = None
        account.last_error = ""
        account.save(
            update_fields=[
                "session_string",
                "login_state",
                "status",
                "reconnect_attempts",
                "next_attempt_at",
                "last_error",
            ]
        )
        transaction.on_commit(lambda: start_now(account.pk))
    logger.info("telegram login: account=%s logged in by user=%s", account.pk, actor.pk)
