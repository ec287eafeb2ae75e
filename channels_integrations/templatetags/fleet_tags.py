"""{{ row|live_status }}: what a connection's page shows (channels_integrations.fleet):
"Waiting for capacity" when no host has room, never "Connected" without a live holder."""

from django import template

from channels_integrations import fleet

register = template.Library()


@register.filter
def live_status(row) -> str:
    return fleet.row_state(row)[1]


@register.filter
def live_status_code(row) -> str:
    return fleet.row_state(row)[0]
