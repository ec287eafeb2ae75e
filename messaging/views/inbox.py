"""The live inbox: the conversation list with its filters, and the conversation view.

Pages render in full; htmx and static/js/inbox.js fetch the same templates' partials (the list,
one message, a page of history, the header) so there is one renderer for every piece. Writes
go through messaging.services, whose events (after commit) tell every open browser to re-fetch.
"""

import json
from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.http import HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.views import company_member_required
from inbox_search.selectors import newest_hit_per_conversation
from messaging import channels, selectors, services
from messaging.models import Conversation
from messaging.services import reactions
from triage import selectors as triage_selectors
from triage.filters import ANY_STATUS, DEFAULT_STATUS, canonical_query

CONVERSATIONS_PER_PAGE = 50
LIST_TARGET = "inbox-list"  # the element id htmx swaps the list partial into
FILTER_KEYS = ("platform", "status", "assigned", "unread", "q", "label")
ASSIGNED_CHOICES = [("", "Everyone's"), ("mine", "Mine"), ("unassigned", "Unassigned")]


# ---------------------------------------------------------------- the list


def _list_context(request, current=None) -> dict:
    # The inbox shows open conversations unless asked otherwise ("all": every state).
    filters = selectors.inbox_filters(request.GET)
    conversations = selectors.filtered_inbox(request.user, filters)
    page = Paginator(conversations, CONVERSATIONS_PER_PAGE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    prefetch_related_objects(page.object_list, triage_selectors.label_links_prefetch())
    if filters["q"]:  # each row shows its newest message that matched, and opens at it
        hits = newest_hit_per_conversation(
            request.user, filters["q"], [conversation.pk for conversation in page.object_list]
        )
        for conversation in page.object_list:
            conversation.search_hit = hits.get(conversation.pk)
    # The filters ride along on every conversation link, so switching keeps them.
    kept = request.GET.copy()
    kept.pop("page", None)
    for key in list(kept):
        if key not in FILTER_KEYS or not kept.get(key):
            kept.pop(key)
    return {
        "page": page,
        "filters": filters,
        "filtered": any(v for k, v in filters.items() if k != "status")
        or filters["status"] != DEFAULT_STATUS,
        "filter_query": kept.urlencode(),
        "platforms": channels.platform_choices(),
        "statuses": [*Conversation.Status.choices, (ANY_STATUS, _("All states"))],
        "labels": triage_selectors.company_labels(request.user),
        # Called by the template only where the sidebar is drawn (not for list refreshes).
        "saved_views": lambda: triage_selectors.views_with_counts(request.user),
        "bulk_members": lambda: selectors.company_members(request.user),
        # Which saved view is shown now (none while searching).
        "current_query": "" if filters["q"] else canonical_query(filters),
        "assigned_choices": ASSIGNED_CHOICES,
        "current_id": getattr(current, "pk", None),
        "today": timezone.localdate(),
    }


def _wants_list_partial(request) -> bool:
    htmx = request.htmx
    return bool(htmx) and htmx.target == LIST_TARGET and not htmx.history_restore_request


@company_member_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")  # one URL answers the page or the list partial
def inbox(request):
    context = _list_context(request)
    if _wants_list_partial(request):
        return render(request, "messaging/_inbox_list.html", context)
    return render(request, "messaging/inbox.html", context)


# ---------------------------------------------------------------- one conversation


def _conversation_context(request, conversation, **extra) -> dict:
    return {
        "conversation": conversation,
        "members": selectors.company_members(request.user),
        **extra,
    }


@company_member_required
@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def conversation_detail(request, pk):
    conversation = selectors.get_conversation(request.user, pk)
    if _wants_list_partial(request):  # the list pane beside the conversation
        return render(request, "messaging/_inbox_list.html", _list_context(request, conversation))
    # Opening a conversation reads it.
    conversation = services.mark_conversation_read(request.user, conversation)
    # ?message=<id> (a search hit): open the thread at that message, marked.
    around = selectors.message_page_through(conversation, request.GET.get("message", ""))
    thread_messages, has_earlier = around or selectors.message_page(conversation)
    context = _list_context(request, conversation)
    context.update(
        _conversation_context(
            request, conversation, thread_messages=thread_messages, has_earlier=has_earlier
        ),
        hit_id=int(request.GET["message"]) if around else None,
    )
    context.update(triage_selectors.contact_panel(request.user, conversation))
    return render(request, "messaging/conversation_detail.html", context)


@company_member_required
@require_GET
def conversation_header(request, pk):
    conversation = selectors.get_conversation(request.user, pk)
    return render(
        request,
        "messaging/_conversation_header.html",
        _conversation_context(request, conversation),
    )


def _message_id(value):
    if value is None or value == "":
        return None
    if not str(value).isdigit():
        raise ValidationError({"before": [_("Must be a message id.")]})
    return int(value)


@company_member_required
@require_GET
def conversation_messages(request, pk):
    """History as `<li>` items: `?before=<id>` the page before that message (with the next
    "Load earlier" button out of band), `?id=<id>` one message, nothing: the newest page."""
    conversation = selectors.get_conversation(request.user, pk)
    try:
        before = _message_id(request.GET.get("before"))
        one = _message_id(request.GET.get("id"))
    except ValidationError as exc:
        return HttpResponseBadRequest("; ".join(exc.messages))
    if one is not None:
        message = selectors.get_conversation_message(conversation, one)
        return render(
            request,
            "messaging/_conversation_message.html",
            {"conversation": conversation, "message": message},
        )
    thread_messages, has_earlier = selectors.message_page(conversation, before=before)
    return render(
        request,
        "messaging/_conversation_messages.html",
        {
            "conversation": conversation,
            "thread_messages": thread_messages,
            "has_earlier": has_earlier,
            "oob": True,
        },
    )


# ---------------------------------------------------------------- agents' actions


def _errors(exc: ValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


def _back_to(conversation):
    return redirect("conversation_detail", conversation.pk)


REOPENED_NOTICE = gettext_lazy("This conversation was closed: your reply reopened it.")
REPLY_OPTIONS = {"mail": ("subject", "cc", "bcc")}  # the reply box's fields per compose kind


def _posted_template(post) -> tuple[str, dict | None]:
    """The reply box's template picker: ("name:language", {"name", "language", "variables"})
    from `template` and its inputs `var:<name>:<language>:<component>:<n>`; ("", None) when
    no template was chosen."""
    chosen = post.get("template", "")
    if not chosen:
        return "", None
    name, _sep, language = chosen.partition(":")
    prefix = f"var:{chosen}:"
    found: dict[str, dict[int, str]] = {}
    for key, value in post.items():
        if key.startswith(prefix):
            kind, _sep, index = key[len(prefix) :].partition(":")
            if index.isdigit():
                found.setdefault(kind, {})[int(index)] = value
    variables = {
        kind: [values[index] for index in sorted(values)] for kind, values in found.items()
    }
    return chosen, {"name": name, "language": language, "variables": variables}


@company_member_required
@require_POST
def conversation_reply(request, pk):
    conversation = selectors.get_conversation(request.user, pk)
    # A multipart form (the reply box takes files) carries a textarea's lines as CRLF.
    body = request.POST.get("body", "").replace("\r\n", "\n")
    names = REPLY_OPTIONS.get(conversation.capabilities.compose, ())
    options = {name: request.POST.get(name) for name in names if name in request.POST}
    chosen_template, template = _posted_template(request.POST)
    reply_to = selectors.quotable_message(conversation, request.POST.get("reply_to", ""))
    try:
        message = services.send_message(
            conversation,
            request.user,
            body,
            options=options,
            template=template,
            files=request.FILES.getlist("files"),
            reply_to=reply_to,
        )
    except ValidationError as exc:
        errors = _errors(exc)
        context = {
            "conversation": conversation,
            "body": body,
            "chosen_template": chosen_template,
            "template_errors": errors.pop("template", []) + errors.pop("template.variables", []),
            "reply_to_message": reply_to,
            "body_errors": errors.pop("body", []),
            "files_errors": errors.pop("files", []),
            **options,
            **{f"{name}_errors": errors.pop(name, []) for name in names},
            "other_errors": [error for field_errors in errors.values() for error in field_errors],
        }
        if request.htmx:
            return render(request, "messaging/_conversation_reply.html", context, status=400)
        context.update(_list_context(request, conversation))
        thread_messages, has_earlier = selectors.message_page(conversation)
        context.update(
            _conversation_context(
                request, conversation, thread_messages=thread_messages, has_earlier=has_earlier
            )
        )
        context.update(triage_selectors.contact_panel(request.user, conversation))
        return render(request, "messaging/conversation_detail.html", context, status=400)
    if not request.htmx:
        if getattr(message, "reopened_conversation", False):
            messages.info(request, REOPENED_NOTICE)
        return _back_to(conversation)
    response = render(
        request,
        "messaging/_conversation_reply.html",
        {
            "conversation": conversation,
            "autofocus": True,
            "reopened": getattr(message, "reopened_conversation", False),
        },
    )
    # inbox.js puts the stored message in the thread (the same path as a realtime event).
    response["HX-Trigger"] = json.dumps({"inbox:message-stored": {"id": message.pk}})
    return response


@company_member_required
@require_POST
def conversation_note(request, pk):
    """A private note (never sent to the customer); htmx gets a fresh note box."""
    conversation = selectors.get_conversation(request.user, pk)
    body = request.POST.get("body", "")
    try:
        note = services.add_note(request.user, conversation, body)
    except ValidationError as exc:
        errors = _errors(exc)
        context = _conversation_context(
            request,
            conversation,
            note_body=body,
            note_errors=[error for field_errors in errors.values() for error in field_errors],
        )
        if request.htmx:
            return render(request, "messaging/_conversation_note.html", context, status=400)
        context.update(_list_context(request, conversation))
        thread_messages, has_earlier = selectors.message_page(conversation)
        context.update(thread_messages=thread_messages, has_earlier=has_earlier)
        return render(request, "messaging/conversation_detail.html", context, status=400)
    if not request.htmx:
        return _back_to(conversation)
    response = render(
        request,
        "messaging/_conversation_note.html",
        _conversation_context(request, conversation, note_autofocus=True),
    )
    response["HX-Trigger"] = json.dumps({"inbox:message-stored": {"id": note.pk}})
    return response


@company_member_required
@require_POST
def message_retry(request, pk, message_pk):
    """Send a failed message again; htmx gets the message's new `<li>`."""
    conversation = selectors.get_conversation(request.user, pk)
    message = selectors.get_conversation_message(conversation, message_pk)
    error = ""
    try:
        message = services.retry_message(request.user, message)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if not request.htmx:
        return _back_to(conversation)
    return render(
        request,
        "messaging/_conversation_message.html",
        {"conversation": conversation, "message": message, "retry_error": error},
        status=400 if error else 200,
    )


@company_member_required
@require_POST
def message_react(request, pk, message_pk):
    """Set our reaction on a customer's message (`emoji`), or remove it (`emoji` empty); htmx
    gets the message's new `<li>`."""
    conversation = selectors.get_conversation(request.user, pk)
    message = selectors.get_conversation_message(conversation, message_pk)
    emoji = request.POST.get("emoji", "")
    error = ""
    try:
        if emoji.strip():
            reactions.react(request.user, message, emoji)
        else:
            reactions.unreact(request.user, message)
    except ValidationError as exc:
        error = " ".join(exc.messages)
    if not request.htmx:
        return _back_to(conversation)
    return render(
        request,
        "messaging/_conversation_message.html",
        {
            "conversation": conversation,
            "message": selectors.get_conversation_message(conversation, message.pk),
            "retry_error": error,
        },
        status=400 if error else 200,
    )


def _header_response(request, conversation, errors=None):
    if not request.htmx and not errors:
        return _back_to(conversation)
    return render(
        request,
        "messaging/_conversation_header.html",
        _conversation_context(request, conversation, errors=errors or {}),
        status=400 if errors else 200,
    )


@company_member_required
@require_POST
def conversation_assign(request, pk):
    """`assignee`: "me", a member's id, or empty to unassign."""
    conversation = selectors.get_conversation(request.user, pk)
    raw = request.POST.get("assignee", "").strip()
    if raw == "me":
        assignee = request.user
    elif raw == "":
        assignee = None
    else:
        members = selectors.company_members(request.user)
        assignee = members.filter(pk=raw).first() if raw.isdigit() else None
        if assignee is None:  # not a number, or not an active member of this company
            return _header_response(
                request, conversation, {"assignee": ["Choose a member of your company."]}
            )
    try:
        conversation = services.assign_conversation(request.user, conversation, assignee)
    except ValidationError as exc:
        return _header_response(request, conversation, _errors(exc))
    return _header_response(request, conversation)


SNOOZE_CHOICES = ("1h", "4h", "tomorrow", "week", "reply", "custom")


def _snooze_until(post):
    """The wake-up time the snooze form asks for: `snooze` one of SNOOZE_CHOICES ("reply": None,
    until the customer writes; "custom": `until`, a datetime-local in the current time zone)."""
    choice = post.get("snooze", "")
    now = timezone.localtime()
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "4h":
        return now + timedelta(hours=4)
    if choice == "tomorrow":
        return timezone.make_aware(datetime.combine(now.date() + timedelta(days=1), time(9)))
    if choice == "week":
        monday = now.date() + timedelta(days=7 - now.weekday())
        return timezone.make_aware(datetime.combine(monday, time(9)))
    if choice == "reply":
        return None
    if choice == "custom":
        try:
            until = datetime.fromisoformat(post.get("until", ""))
        except ValueError:
            raise ValidationError({"snoozed_until": [_("Pick a date and time.")]}) from None
        return timezone.make_aware(until) if timezone.is_naive(until) else until
    raise ValidationError({"snooze": [_("Choose how long to snooze.")]})


@company_member_required
@require_POST
def conversation_status(request, pk):
    """`status`: "open", "pending", "closed", or "snoozed" with `snooze` (see _snooze_until)."""
    conversation = selectors.get_conversation(request.user, pk)
    status = request.POST.get("status", "")
    try:
        until = _snooze_until(request.POST) if status == Conversation.Status.SNOOZED else None
        conversation = services.set_conversation_status(
            request.user, conversation, status, snoozed_until=until
        )
    except ValidationError as exc:
        return _header_response(request, conversation, _errors(exc))
    return _header_response(request, conversation)


@company_member_required
@require_POST
def conversation_read(request, pk):
    """The agent is looking at it: new messages arriving in the open conversation are read."""
    conversation = selectors.get_conversation(request.user, pk)
    services.mark_conversation_read(request.user, conversation)
    if request.htmx:
        return HttpResponse(status=204)
    return _back_to(conversation)
