"""`{% export_offer subject %}`: the delete pages' "Export first" card for a channel source
(a number, an account, a mailbox, a page) or a client."""

from django import template

from crm.models import Client
from messaging import channels

from .. import selectors, services
from ..models import CLIENT

register = template.Library()


def offer_context(user, kind: str, object_id: int, next_url: str) -> dict:
    job = selectors.latest_for(user, kind, object_id)
    return {
        "kind": kind,
        "object_id": object_id,
        "job": job,
        "may_export": services.may_export(user, kind),
        "conversations": services.subject_conversations(
            user.company_id, kind, object_id, user
        ).count(),
        "next": next_url,
    }


@register.inclusion_tag("exports/_offer.html", takes_context=True)
def export_offer(context, subject) -> dict:
    request = context["request"]
    kind = CLIENT if isinstance(subject, Client) else channels.for_source(subject).platform
    return {
        **offer_context(request.user, kind, subject.pk, request.get_full_path()),
        "request": request,
    }
