"""The sandbox as admins edit it: its name, and whether it is on."""

from ..services.channels import AccountKind, register_account
from .models import SandboxInbox

SANDBOX_KIND = register_account(
    AccountKind(model=SandboxInbox, editable=("name", "is_active"), unique_per_company=())
)
