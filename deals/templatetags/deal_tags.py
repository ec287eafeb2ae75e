from django import template

from .. import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def open_deals_of(context, client):
    """The client's open deals, scoped to the viewer's company (for includes on any page)."""
    user = context.get("user") or context["request"].user
    if client is None:
        return []
    return list(selectors.client_deals(user, client, open_only=True)[:20])
