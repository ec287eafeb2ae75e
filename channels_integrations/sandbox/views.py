"""The customer's side of the sandbox: pick or name a customer, write as them, watch the
agents' replies arrive and mark them delivered or read. Any company member may use it."""

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
