"""The reply box's file limits, from the conversation's channel (messaging.channels): inbox.js
checks each file against them before it is uploaded."""

import json

from django import template

from messaging import channels

register = template.Library()


@register.simple_tag
def file_limits_json(conversation) -> str:
    """The channel's limits as JSON for a data attribute (escaped by the template)."""
    channel = channels.get(conversation.platform)
    capabilities = channel.capabilities
    return json.dumps(
        {
            "channel": channel.label,
            "max_files": capabilities.max_files,
            "total": capabilities.files_total_bytes,
            "limits": [
                {"kind": limit.kind, "max": limit.max_bytes, "types": list(limit.content_types)}
                for limit in capabilities.file_limits
            ],
        }
    )


@register.filter
def sends_files(conversation) -> bool:
    capabilities = channels.get(conversation.platform).capabilities
    return bool(capabilities.attachments and capabilities.file_limits)


@register.filter
def quotes(conversation) -> bool:
    return channels.get(conversation.platform).capabilities.quotes
