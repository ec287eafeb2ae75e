"""Writes for connected channels: numbers, Telegram accounts, email accounts."""

from .channels import EDITABLE, UNIQUE_PER_COMPANY, delete_channel, save_channel  # noqa: F401
from .numbers import (  # noqa: F401
    NumberDeletionFailed,
    delete_number,
    deletion_preview,
    run_number_deletion,
    set_number_active,
)
