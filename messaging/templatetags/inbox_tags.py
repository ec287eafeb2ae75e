"""Template helpers of the inbox thread: typed content and reactions."""

from django import template

from messaging import rich

register = template.Library()

# The reaction picker's choices (any emoji can be sent through the API).
QUICK_REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")


@register.filter
def map_url(content) -> str:
    return rich.map_url(content) if isinstance(content, dict) else ""


@register.simple_tag
def quick_reactions() -> tuple[str, ...]:
    return QUICK_REACTIONS


@register.simple_tag
def split_reactions(message) -> dict:
    """{"customer": the customer's reaction or None, "ours": ours or None} (prefetched rows)."""
    found = {"customer": None, "ours": None}
    for row in message.reactions.all():
        found["customer" if row.from_customer else "ours"] = row
    return found
