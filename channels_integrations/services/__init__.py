"""Writes shared by every channel's settings: saving and deleting an account or number."""

from .channels import (  # noqa: F401
    AccountKind,
    account_kind,
    delete_channel,
    register_account,
    save_channel,
)
