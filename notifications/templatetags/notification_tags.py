from django import template

from .. import selectors

register = template.Library()


@register.inclusion_tag("notifications/_bell.html", takes_context=True)
def notification_bell(context):
    """The bell of the signed-in member: unread count and the sound preference."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.company_id:
        return {"show": False}
    unread, sound = selectors.bell_state(user)
    return {"show": True, "unread": unread, "sound": sound}
