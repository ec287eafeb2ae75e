"""A mailbox as company admins edit it: its owner is a member of the company (the admin who
adds it, unless chosen), and unencrypted SMTP is for loopback only."""

from django.core.exceptions import ValidationError

from ..models import EmailAccount
from ..services.channels import AccountKind, register_account
from .smtp import is_loopback


def _prepare(actor, account: EmailAccount, fields: dict) -> None:
    owner = fields.get("owner")
    if owner is not None and owner.company_id != actor.company_id:
        raise ValidationError({"owner": ["Choose a member of your company."]})
    if account.pk is None and "owner" not in fields:
        fields["owner"] = actor


def _prepared(account: EmailAccount, fields: dict) -> None:
    if account.smtp_security == EmailAccount.SmtpSecurity.NONE and not is_loopback(
        account.smtp_host
    ):
        raise ValidationError(
            {
                "smtp_security": [
                    "Unencrypted SMTP is for loopback only; choose SSL/TLS or STARTTLS."
                ]
            }
        )


KIND = register_account(
    AccountKind(
        model=EmailAccount,
        editable=(
            "owner",
            "address",
            "display_name",
            "imap_host",
            "imap_port",
            "imap_ssl",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "username",
            "password",
            "is_active",
            "poll_interval_seconds",
            "first_sync_days",
            "use_idle",
        ),
        unique_per_company=("address",),
        prepare=_prepare,
        prepared=_prepared,
    )
)
