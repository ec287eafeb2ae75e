"""The typed route of an email send: the account's SMTP settings, the thread headers, and what
the reply was queued with (subject, copies, signature, the message it quotes)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Quote:
    """The message a reply answers, quoted below it: "On <date>, <who> wrote:" and its text."""

    attribution: str
    text: str


@dataclass(frozen=True)
class SmtpRoute:
    address: str
    display_name: str
    smtp_host: str
    smtp_port: int
    smtp_security: str  # none, starttls, ssl
    username: str
    password: str
    in_reply_to: str = ""  # Message-ID of the mail answered
    references: tuple[str, ...] = ()
    subject: str = ""  # exactly as queued ("" before replies stored one: "Re: " + the thread's)
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()  # envelope recipients only, never a header
    signature: str = ""
    quote: Quote | None = None

    @classmethod
    def of(cls, account, **reply) -> "SmtpRoute":
        return cls(
            address=account.address,
            display_name=account.display_name,
            smtp_host=account.smtp_host,
            smtp_port=account.smtp_port,
            smtp_security=account.smtp_security,
            username=account.username,
            password=account.password,
            **{
                name: tuple(value) if name in ("references", "cc", "bcc") else value
                for name, value in reply.items()
            },
        )
