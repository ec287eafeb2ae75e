"""Telegram user accounts (MTProto via Telethon): a supervised listener per account, replies
through the same client, and the log-in flow (code, then the 2FA password if any)."""

PLATFORM = "telegram"  # conversations of this channel carry it (channel.py registers it)
