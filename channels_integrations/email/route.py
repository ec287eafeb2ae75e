"""The typed route of an email send: the account's SMTP settings and the thread headers."""

from dataclasses import dataclass


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

    @classmethod
    def of(cls, account, *, in_reply_to: str = "", references=()) -> "SmtpRoute":
        return cls(
            address=account.address,
            display_name=account.display_name,
            smtp_host=account.smtp_host,
            smtp_port=account.smtp_port,
            smtp_security=account.smtp_security,
            username=account.username,
            password=account.password,
            in_reply_to=in_reply_to,
            references=tuple(references),
        )
