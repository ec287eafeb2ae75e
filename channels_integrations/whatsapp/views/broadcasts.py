"""Broadcast pages: list, create (number, text, recipients, now or later), and the detail page
with live progress (static/js/broadcasts.js listens to `broadcast.progress`) and a cancel button.

Every member reads; only company admins create and cancel. Writes go through
channels_integrations.whatsapp.broadcasts, whose field errors (every invalid pasted line with its
number) land back on the form.
"""

import re

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404, scoped
from accounts.views import company_member_required
from channels_integrations.models import Broadcast, BroadcastRecipient, WhatsAppNumber
from channels_integrations.whatsapp import broadcasts as services
from channels_integrations.whatsapp import templates as template_services
from crm.models import Client

CLIENT_NAME = re.compile(r"\{\s*client_name\s*(?:\|([^}]*))?\}")
BROADCASTS_PER_PAGE = 25
RECIPIENTS_PER_PAGE = 50


class BroadcastForm(forms.Form):
    AUDIENCE = [
        ("all", "All clients with a phone number"),
        ("chosen", "Chosen clients"),
        ("none", "No clients, only the pasted numbers"),
    ]
    WHEN = [("now", "Send now"), ("at", "Send at…")]

    number = forms.ModelChoiceField(
        queryset=WhatsAppNumber.objects.none(), empty_label=None, label="From number"
    )
    name = forms.CharField(
        max_length=200, required=False, help_text="For your team; recipients do not see it."
    )
    text = forms.CharField(
        required=False,
        strip=False,
        label="Message",
        widget=forms.Textarea(attrs={"rows": 6, "data-max-length": services.TEXT_MAX_LENGTH}),
        help_text=f"Up to {services.TEXT_MAX_LENGTH} characters.",
    )
    template = forms.ChoiceField(
        required=False,
        label=_("Template (Cloud numbers)"),
        help_text=_(
            "Outside the 24-hour window only an approved template reaches a client. With a "
            "template, the message text above is not used."
        ),
    )
    template_variables = forms.CharField(
        required=False,
        strip=False,
        label=_("Template variables"),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "{client_name|friend}\n20%"}),
        help_text=_(
            "One line per variable, in order ({{1}}, {{2}} …; the header's first). A line "
            "{client_name|friend} is each recipient's client name (“friend” when there is none)."
        ),
    )
    audience = forms.ChoiceField(
        choices=AUDIENCE, initial="all", widget=forms.RadioSelect, label="Clients"
    )
    clients = forms.ModelMultipleChoiceField(
        queryset=Client.objects.none(),
        required=False,
        label="Chosen clients",
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Ctrl/⌘-click to choose several. Only clients with a phone number are listed.",
    )
    phones = forms.CharField(
        required=False,
        strip=False,
        label="Pasted phone numbers",
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "+4915123456789\n+4930123456"}),
        help_text="Optional, added to the clients above. One per line, international format. "
        "Every line is checked: invalid lines are listed back and nothing is created until "
        "they are fixed. Duplicates are merged.",
    )
    when = forms.ChoiceField(choices=WHEN, initial="now", widget=forms.RadioSelect, label="When")
    scheduled_at = forms.DateTimeField(
        required=False,
        label="Send at",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["number"].queryset = (
            scoped(WhatsAppNumber, user)
            .filter(is_active=True)
            .exclude(status=WhatsAppNumber.Status.DELETING)
            .only("pk", "phone", "display_name")
        )
        self.fields["clients"].queryset = (
            scoped(Client, user).exclude(phone="").only("pk", "name", "phone")
        )
        offered = template_services.company_offered_templates(user)
        self.fields["template"].choices = [("", _("No template: send the text"))] + [
            (
                f"{t.number_id}:{t.name}:{t.language}",
                f"{t.name} ({t.language}) — {t.number.phone}",
            )
            for t in offered
        ]
        self.template_rows = {f"{t.number_id}:{t.name}:{t.language}": t for t in offered}

    def template_choice(self) -> dict | None:
        """The chosen template as create_broadcast takes it (None: none chosen); a bad line
        or a template of another number is an error on these fields."""
        data = self.cleaned_data
        row = self.template_rows.get(data.get("template") or "")
        if row is None:
            return None
        if data.get("number") and row.number_id != data["number"].pk:
            self.add_error("template", _("This template belongs to another number."))
            return None
        specs = []
        for line in (data.get("template_variables") or "").splitlines():
            line = line.strip()
            if not line:
                continue
            match = CLIENT_NAME.fullmatch(line)
            if match:
                specs.append({"kind": "client_name", "text": (match.group(1) or "").strip()})
            else:
                specs.append({"kind": "text", "text": line})
        variables, position = {}, 0
        for kind in ("header", "body"):
            count = row.variables.get(kind, 0)
            if count:
                variables[kind] = specs[position : position + count]
                position += count
        if position != len(specs) or any(
            len(values) != row.variables.get(kind, 0) for kind, values in variables.items()
        ):
            self.add_error(
                "template_variables",
                _("This template has %(count)d variable(s); write one line for each.")
                % {"count": sum(row.variables.values())},
            )
            return None
        return {"name": row.name, "language": row.language, "variables": variables}

    invalid_lines: list = ()

    def clean_phones(self):
        # Checked here too, so the invalid lines are listed even when another field is wrong.
        phones = self.cleaned_data["phones"]
        self.invalid_lines = services.parse_phone_lines(phones)[1]
        if self.invalid_lines:
            count = len(self.invalid_lines)
            raise ValidationError(
                ngettext(
                    "%(count)d line is not a valid phone number; fix or remove it (nothing was "
                    "created).",
                    "%(count)d lines are not a valid phone number; fix or remove them (nothing "
                    "was created).",
                    count,
                )
                % {"count": count}
            )
        return phones

    def clean(self):
        data = super().clean()
        if data.get("when") == "at" and not data.get("scheduled_at"):
            self.add_error("scheduled_at", _("Pick the date and time to send at."))
        if data.get("audience") == "chosen" and not data.get("clients"):
            self.add_error("clients", _("Choose at least one client, or pick another option."))
        return data


def _admin_only(user):
    if not user.is_company_admin:
        raise PermissionDenied(_("Only company admins create and cancel broadcasts."))


def _broadcasts(user):
    return services.with_counts(
        scoped(Broadcast, user)
        .filter(number__isnull=False)  # the sandbox's show on its own page
        .exclude(number__status=WhatsAppNumber.Status.DELETING)
        .select_related("number", "created_by")
        .order_by("-created_at", "-id")
    )


@company_member_required
def broadcast_list(request):
    page = Paginator(_broadcasts(request.user), BROADCASTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "channels_integrations/broadcast_list.html", {"page": page})


@company_member_required
def broadcast_create(request):
    _admin_only(request.user)
    form = BroadcastForm(request.POST if request.method == "POST" else None, user=request.user)
    template = form.template_choice() if form.is_valid() else None
    if form.is_valid():
        data = form.cleaned_data
        audience = data["audience"]
        try:
            broadcast = services.create_broadcast(
                request.user,
                number=data["number"],
                name=data["name"],
                text=data["text"],
                all_clients=audience == "all",
                client_ids=[c.pk for c in data["clients"]] if audience == "chosen" else (),
                phones=data["phones"],
                scheduled_at=data["scheduled_at"] if data["when"] == "at" else None,
                template=template,
            )
        except ValidationError as exc:
            errors = dict(exc.message_dict)
            if "template.variables" in errors:
                errors["template_variables"] = errors.pop("template.variables")
            if "phones" in errors:  # the summary on the field; every line in a table
                form.invalid_lines = services.parse_phone_lines(data["phones"])[1]
                errors["phones"] = errors["phones"][:1]
            recipients = errors.pop("recipients", None)  # no field of that name
            if recipients:
                form.add_error(None, recipients)
            if errors:
                form.add_error(None, ValidationError(errors))
        else:
            messages.success(
                request,
                _("Broadcast created: scheduled.")
                if broadcast.scheduled_at
                else _("Broadcast created: sending now."),
            )
            return redirect("broadcast_detail", pk=broadcast.pk)
    return render(
        request,
        "channels_integrations/broadcast_form.html",
        {
            "form": form,
            "invalid_lines": form.invalid_lines,
            "text_max_length": services.TEXT_MAX_LENGTH,
            "rate_per_minute": services.rate_per_minute(),
        },
    )


@company_member_required
def broadcast_detail(request, pk):
    broadcast = get_scoped_or_404(_broadcasts(request.user), request.user, pk=pk)
    recipients = BroadcastRecipient.objects.filter(broadcast=broadcast).select_related("client")
    status = request.GET.get("status", "")
    if status in BroadcastRecipient.Status.values:
        recipients = recipients.filter(status=status)
    page = Paginator(recipients.order_by("id"), RECIPIENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "channels_integrations/broadcast_detail.html",
        {
            "broadcast": broadcast,
            "page": page,
            "status_filter": status,
            "statuses": BroadcastRecipient.Status.choices,
            "cancellable": broadcast.status in services.CANCELLABLE_STATUSES,
            "paused": broadcast.status in services.ACTIVE_STATUSES
            and not broadcast.number.is_active,
        },
    )


@company_member_required
@require_POST
def broadcast_cancel(request, pk):
    _admin_only(request.user)
    broadcast = get_scoped_or_404(
        Broadcast.objects.filter(number__isnull=False).select_related("number"),
        request.user,
        pk=pk,
    )
    try:
        broadcast = services.cancel_broadcast(request.user, broadcast)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, _("Broadcast cancelled: nothing more will be sent."))
    return redirect("broadcast_detail", pk=pk)
