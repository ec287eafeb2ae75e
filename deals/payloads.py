"""The JSON shape of a deal, shared by realtime events and the API."""

from crm.vocabulary import status_label

from .models import Deal


def deal_payload(deal: Deal) -> dict:
    return {
        "id": deal.pk,
        "title": deal.title,
        "amount": str(deal.amount),
        "currency": deal.currency,
        "pipeline_id": deal.pipeline_id,
        "stage_id": deal.stage_id,
        "status": deal.status,
        "status_label": status_label(deal),  # lazy: each reader's language
        "lost_reason": deal.lost_reason,
        "owner_id": deal.owner_id,
        "owner_name": deal.owner.display_name if deal.owner_id and deal.owner else "",
        "client_id": deal.client_id,
        "client_name": str(deal.client) if deal.client_id else "",
        "conversation_id": deal.conversation_id,
        "expected_close_date": deal.expected_close_date.isoformat()
        if deal.expected_close_date
        else None,
        "closed_at": deal.closed_at.isoformat() if deal.closed_at else None,
        "created_at": deal.created_at.isoformat() if deal.created_at else None,
        "updated_at": deal.updated_at.isoformat() if deal.updated_at else None,
    }
