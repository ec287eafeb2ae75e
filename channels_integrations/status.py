"""How connection rows show their status (crm.vocabulary): a deactivated account says so
whatever its last state was, a Telegram account without a session is "Not logged in", and a
live connection's state comes from the fleet ("Waiting for capacity", never "Connected"
without a live holder). Pages, the API and events all take these words from here."""

from django.utils.translation import gettext_lazy as _

from crm.vocabulary import Words, label_for, shows

from . import fleet
from .meta.models import MetaSource
from .models import EmailAccount, TelegramAccount, WhatsAppSession

DEACTIVATED = _("Deactivated")
NOT_LOGGED_IN = _("Not logged in")


@shows(EmailAccount, MetaSource)
def account_status(row) -> tuple[str, Words]:
    if not row.is_active:
        return row.status, DEACTIVATED
    if isinstance(row, EmailAccount):
        return fleet.row_state(row)  # an IDLE mailbox may wait for a host's room
    return row.status, label_for(type(row), row.status)


@shows(TelegramAccount)
def telegram_status(row: TelegramAccount) -> tuple[str, Words]:
    if not row.is_active:
        return row.status, DEACTIVATED
    has_session = getattr(row, "session_string_set", None)
    if not (row.session_string if has_session is None else has_session):
        return row.status, NOT_LOGGED_IN
    return fleet.row_state(row)


@shows(WhatsAppSession)
def session_status(row: WhatsAppSession) -> tuple[str, Words]:
    return fleet.row_state(row)
