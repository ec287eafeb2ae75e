"""Writes for connected channels: numbers, Telegram accounts, email accounts."""

from .channels import (  # noqa: F401
    EDITABLE,
    UNIQUE_PER_COMPANY,
    delete_channel,
    reconnect_telegram,
    save_channel,
)
from .numbers import (  # noqa: F401
    NumberDeletionFailed,
    delete_number,
    deletion_preview,
    run_number_deletion,
    set_number_active,
)

# isort: split
from .bots import (  # noqa: F401
    answer_inbound,
    create_bot,
    create_rule,
    delete_bot,
    delete_rule,
    first_matching_rule,
    is_automated,
    move_rule,
    reorder_rules,
    rule_matches,
    update_bot,
    update_rule,
)

# isort: split
from .broadcasts import (  # noqa: F401
    InvalidLine,
    cancel_broadcast,
    create_broadcast,
    parse_phone_lines,
    run_broadcast_batch,
    with_counts,
)
