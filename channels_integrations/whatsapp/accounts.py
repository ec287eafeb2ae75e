"""A WhatsApp number as company admins edit it (Settings → WhatsApp, `whatsapp/numbers/`)."""

from ..models import WhatsAppNumber
from ..services.channels import ROUTING, AccountKind, register_account
from .numbers import publish_number_updated

KIND = register_account(
    AccountKind(
        model=WhatsAppNumber,
        editable=(
            "phone",
            "display_name",
            "provider",
            "is_active",
            "cloud_phone_number_id",
            "cloud_business_account_id",
            "cloud_access_token",
            "cloud_app_secret",
            "cloud_verify_token",
            *ROUTING,
        ),
        unique_per_company=("phone",),
        saved=lambda number, fields: publish_number_updated(number),
    )
)
