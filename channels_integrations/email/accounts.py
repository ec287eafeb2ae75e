"""A mailbox as company admins edit it: its owner is a member of the company (the admin who
adds it, unless chosen), and unencrypted SMTP is for loopback only."""

import ipaddress
import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from .. import outbound
from ..models import EmailAccount
from ..services.channels import ROUTING, AccountKind, register_account
from .smtp import is_loopback


def _prepare(actor, account: EmailAccount, fields: dict) -> None:
    owner = fields.get("owner")
    if owner is not None and owner.company_id != actor.company_id:
        raise ValidationError({"owner": [_("Choose a member of your company.")]})
    if account.pk is None and "owner" not in fields:
        fields["owner"] = actor


LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def host_error(host: str) -> str | None:
    """Why `host` is not a host name or IP address we can connect to (None: it is)."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_name = host.encode("idna").decode("ascii").rstrip(".").lower()
    except UnicodeError:
        ascii_name = ""
    if (
        not ascii_name
        or len(ascii_name) > 253
        or not all(LABEL.match(label) for label in ascii_name.split("."))
    ):
        return f"“{host[:100]}” is not a valid host name (e.g. imap.example.com)."
    return None


def _prepared(account: EmailAccount, fields: dict) -> None:
    errors = {
        name: [error]
        for name in ("imap_host", "smtp_host")
        if (error := host_error(getattr(account, name) or ""))
        or (error := outbound.host_error(getattr(account, name) or ""))
    }
    if errors:
        raise ValidationError(errors)
    if account.smtp_security == EmailAccount.SmtpSecurity.NONE and not is_loopback(
        account.smtp_host
    ):
        raise ValidationError(
            {
                "smtp_security": [
                    _("Unencrypted SMTP is for loopback only; choose SSL/TLS or STARTTLS.")
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
            "signature",
            *ROUTING,
        ),
        unique_per_company=("address",),
        prepare=_prepare,
        prepared=_prepared,
    )
)
