"""Writes shared by every channel's settings: saving and deleting an account or number."""

from .channels import (  # noqa: F401
    EDITABLE,
    UNIQUE_PER_COMPANY,
    delete_channel,
    reconnect_telegram,
    save_channel,
)
