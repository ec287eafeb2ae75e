"""Building Telethon clients: the narrowest boundary to Telegram's servers. Tests swap the
factory (settings.TELEGRAM_CLIENT_FACTORY) for a fake that records the calls we make."""

from django.conf import settings
from django.utils.module_loading import import_string


def telethon_client(session_string: str, api_id: int, api_hash: str):
    from telethon import TelegramClient
    from telethon.sessions import StringSession

    return TelegramClient(
        StringSession(session_string or ""),
        int(api_id),
        api_hash,
        # Our supervisor owns reconnecting (with backoff), not the library's loops.
        connection_retries=1,
        retry_delay=0,
        auto_reconnect=False,
        timeout=settings.TELEGRAM_CONNECT_TIMEOUT,
        receive_updates=True,
        device_model="Switchboard",
    )


def make_client(session_string: str, api_id: int, api_hash: str):
    return import_string(settings.TELEGRAM_CLIENT_FACTORY)(session_string, api_id, api_hash)
