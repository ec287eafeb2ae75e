from django import template

from .. import selectors
from ..models import UNREAD_COUNTED

register = template.Library()


@register.inclusion_tag("notifications/_bell.html", takes_context=True)
def notification_bell(context):
    """The bell of the signed-in member: unread count and the sound preference."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.company_id:
        return {"show": False}
    unread, sound = selectors.bell_state(user)
    shown = f"{UNREAD_COUNTED - 1}+" if unread >= UNREAD_COUNTED else str(unread)
    return {
        "show": True,
        "unread": unread,
        "unread_shown": shown,
        "unread_counted": UNREAD_COUNTED,
        "sound": sound,
    }
