"""{{ row|live_status }}: what a connection's page shows (crm.vocabulary, built for
connections in channels_integrations.status): "Deactivated", "Not logged in", "Waiting for
capacity" when no host has room, never "Connected" without a live holder."""

from django import template

from crm.vocabulary import status_of

register = template.Library()


@register.filter
def live_status(row) -> str:
    return status_of(row)[1]


@register.filter
def live_status_code(row) -> str:
    return status_of(row)[0]
