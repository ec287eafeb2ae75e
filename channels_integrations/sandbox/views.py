"""The customer's side of the sandbox: pick or name a customer, write as them, watch the
agents' replies (and the bot's, and broadcasts) arrive and mark them delivered or read. Any
company member may use it; adding bot rules and sending broadcasts is for admins, as on a
WhatsApp number."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.views import company_member_required
from messaging.models import Message
from messaging.services import SourceInactive, validate_body

from ..views.access import company_admin_required
from . import PLATFORM, selectors, services

DEFAULT_CUSTOMER = "Sam Sandbox"


def _customer(request) -> str:
    return (request.GET.get("customer") or request.POST.get("customer") or "").strip()[:100]


def _context(request, customer: str) -> dict:
    sandbox = services.sandbox_of(request.user.company)
    thread_id = services.customer_thread_id(customer or DEFAULT_CUSTOMER)
    conversation, thread = selectors.thread_messages(sandbox, thread_id)
    return {
        "sandbox": sandbox,
        "customer": customer or DEFAULT_CUSTOMER,
        "threads": selectors.customer_threads(sandbox),
        "conversation": conversation,
        "thread": thread,
        "received_broadcasts": selectors.customer_broadcasts(sandbox, conversation),
        "rules": selectors.bot_rules(sandbox),
        "broadcasts": selectors.recent_broadcasts(sandbox),
        "statuses": services.CUSTOMER_STATUSES,
    }


@company_member_required
def sandbox_page(request):
    return render(request, "sandbox/page.html", _context(request, _customer(request)))


@company_member_required
def sandbox_thread(request):
    """The thread alone (the page refreshes it every few seconds)."""
    return render(request, "sandbox/_thread.html", _context(request, _customer(request)))


def _back(customer: str):
    return redirect(reverse("sandbox") + "?" + urlencode({"customer": customer}))


@company_member_required
@require_POST
def sandbox_write(request):
    customer = _customer(request) or DEFAULT_CUSTOMER
    sandbox = services.sandbox_of(request.user.company)
    try:
        body = validate_body(PLATFORM, request.POST.get("body", ""))
        services.customer_writes(sandbox, customer, body)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        context = _context(request, customer)
        context["draft"] = request.POST.get("body", "")
        return render(request, "sandbox/page.html", context, status=400)
    except SourceInactive:
        messages.error(
            request, _("The sandbox is switched off. Switch it on in its settings to use it.")
        )
        return _back(customer)
    return _back(customer)


@company_member_required
@require_POST
def sandbox_mark(request, pk, status):
    if status not in services.CUSTOMER_STATUSES:
        raise Http404
    sandbox = services.sandbox_of(request.user.company)
    if not services.customer_marks(sandbox, pk, status):
        exists = Message.objects.filter(
            pk=pk, conversation__company=request.user.company, conversation__platform=PLATFORM
        ).exists()
        if not exists:
            raise Http404
        messages.info(request, _("That reply already has this status or a later one."))
    return _back(_customer(request))


@company_member_required
@require_POST
def sandbox_mark_broadcast(request, pk, status):
    """The customer's phone reports a broadcast delivered or read."""
    if status not in services.CUSTOMER_STATUSES:
        raise Http404
    sandbox = services.sandbox_of(request.user.company)
    if not services.customer_marks_broadcast(sandbox, pk, status):
        if not selectors.is_broadcast_recipient(sandbox, pk):
            raise Http404
        messages.info(request, _("That broadcast already has this status or a later one."))
    return _back(_customer(request))


def _field_labels() -> dict:
    return {
        "trigger": _("Keyword"),
        "reply_text": _("Reply"),
        "text": _("Broadcast text"),
        "clients": _("Customers"),
        "recipients": _("Customers"),
        "sandbox": _("Sandbox"),
    }


def _refused(request, exc: ValidationError, **draft):
    """The page again with the error named and what was typed kept (400)."""
    labels = _field_labels()
    for field, errors in exc.message_dict.items():
        for error in errors:
            label = labels.get(field, field)
            messages.error(request, error if field == "__all__" else f"{label}: {error}")
    context = _context(request, _customer(request))
    context.update(draft)
    return render(request, "sandbox/page.html", context, status=400)


@company_member_required
@company_admin_required
@require_POST
def sandbox_bot_rule(request):
    """A keyword rule on the sandbox's bot (the bots' service, as for a WhatsApp number)."""
    sandbox = services.sandbox_of(request.user.company)
    trigger = request.POST.get("trigger", "")
    reply = request.POST.get("reply_text", "")
    try:
        services.add_bot_rule(request.user, sandbox, trigger, reply)
    except ValidationError as exc:
        return _refused(request, exc, rule_trigger=trigger, rule_reply=reply)
    messages.success(request, _("Rule added: write its keyword as the customer to try it."))
    return redirect(
        reverse("sandbox") + "?" + urlencode({"customer": _customer(request)}) + "#sandbox-bot"
    )


@company_member_required
@company_admin_required
@require_POST
def sandbox_broadcast(request):
    """A broadcast from the sandbox to the customers ticked (the broadcasts' service)."""
    sandbox = services.sandbox_of(request.user.company)
    text = request.POST.get("text", "")
    chosen = [value for value in request.POST.getlist("clients") if value.isdigit()]
    try:
        services.broadcast_to_customers(request.user, sandbox, text, chosen)
    except ValidationError as exc:
        return _refused(request, exc, broadcast_text=text)
    messages.success(
        request,
        _("Broadcast queued: the worker sends it; each customer's chat shows it to mark."),
    )
    return redirect(
        reverse("sandbox")
        + "?"
        + urlencode({"customer": _customer(request)})
        + "#sandbox-broadcast"
    )
