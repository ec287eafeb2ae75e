"""The reply box's channel state: the customer-service window and, when it is closed, the
templates the conversation's source offers (read through the channel boundary)."""

from django import template

from messaging import channels, selectors

register = template.Library()


@register.simple_tag
def reply_window(conversation):
    """The conversation's ReplyWindow, or None when its channel has none."""
    if "_reply_window" not in conversation.__dict__:
        conversation.__dict__["_reply_window"] = selectors.reply_window(conversation)
    return conversation.__dict__["_reply_window"]


@register.simple_tag
def template_options(conversation):
    """What the template picker offers: each template with its numbered inputs per component."""
    source = conversation.source
    if source is None:
        return []
    options = []
    for option in channels.get(conversation.platform).template_options(source):
        options.append(
            {
                "key": f"{option.name}:{option.language}",
                "option": option,
                "inputs": [
                    (kind, index)
                    for kind in ("header", "body")
                    for index in range(1, option.variables.get(kind, 0) + 1)
                ],
            }
        )
    return options
