"""Email accounts: IMAP polling (and IDLE) into the inbox, SMTP replies in the same thread."""

PLATFORM = "email"  # conversations of this channel carry it (channel.py registers it)
