"""Email accounts: IMAP polling (and IDLE) into the inbox, SMTP replies in the same thread."""
