"""Settings → WhatsApp: the company's numbers, add / edit, deactivate / reactivate, and the
delete page that shows exactly what goes with a number before anything is deleted.

Every member sees the list (read-only for agents); only company admins write. Reads come from
channels_integrations.selectors, writes go through channels_integrations.services.
"""

import logging

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.scoping import get_scoped_or_404
from accounts.views import company_member_required
from channels_integrations import selectors, services
from channels_integrations.forms import KeptSecrets
from channels_integrations.models import WhatsAppNumber
from channels_integrations.views.access import company_admin_required
from channels_integrations.whatsapp import sessions
from channels_integrations.whatsapp.forms import (
    NUMBER_SECRETS,
    ConfirmDeleteForm,
    WhatsAppNumberForm,
)

from .. import numbers as number_services
from .. import templates as template_services

logger = logging.getLogger(__name__)

# What the edit form starts from: every field of the form but the secrets (never shown).
NOT_SECRET = tuple(name for name in WhatsAppNumberForm.base_fields if name not in NUMBER_SECRETS)


def _number_or_404(user, pk) -> WhatsAppNumber:
    """One of the user's company's numbers; one being deleted is gone already."""
    live = WhatsAppNumber.objects.exclude(status=WhatsAppNumber.Status.DELETING)
    return get_scoped_or_404(live, user, pk=pk)


@company_member_required
@vary_on_headers("HX-Request")  # the same URL answers the page or (live refresh) the table
def number_list(request):
    numbers = list(selectors.whatsapp_numbers(request.user))
    web_numbers = [number for number in numbers if number.provider == WhatsAppNumber.Provider.WEB]
    if request.user.is_company_admin:  # the QR links a device: admins only
        for number in web_numbers:
            code = sessions.current_qr(number.pk)
            number.qr_data_url = sessions.qr_payload(code)["qrDataUrl"] if code else ""
    context = {"numbers": numbers, "web_numbers": web_numbers}
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, "channels_integrations/number_table.html", context)
    return render(request, "channels_integrations/number_list.html", context)


@company_member_required
@company_admin_required
def number_create(request):
    kept = KeptSecrets(request, "number:new", NUMBER_SECRETS)
    form = WhatsAppNumberForm(
        kept.fill(request.POST) if request.method == "POST" else None,
        company=request.user.company,
    )
    if request.method == "POST" and not form.is_valid():
        kept.keep(form)
    if form.is_valid():
        try:
            number = services.save_channel(request.user, WhatsAppNumber, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)  # {"phone": [...]} lands on the phone field
            kept.keep(form)
        else:
            kept.clear()
            messages.success(
                request, _("WhatsApp number %(phone)s added.") % {"phone": number.phone}
            )
            return redirect("numbers")
    return render(request, "channels_integrations/number_form.html", {"form": form})


@company_member_required
@company_admin_required
def number_edit(request, pk):
    number = _number_or_404(request.user, pk)
    title = str(number)  # taken before the service assigns (possibly rejected) new values
    secrets_set = {name: bool(getattr(number, name)) for name in NUMBER_SECRETS}
    kept = KeptSecrets(request, f"number:{number.pk}", NUMBER_SECRETS)
    if request.method == "POST":
        form = WhatsAppNumberForm(
            kept.fill(request.POST),
            secrets_set=secrets_set,
            company=request.user.company,
            routing=number,
        )
        if not form.is_valid():
            kept.keep(form)
    else:
        form = WhatsAppNumberForm(
            initial=model_to_dict(number, fields=NOT_SECRET),
            secrets_set=secrets_set,
            company=request.user.company,
            routing=number,
        )
    if request.method == "POST" and form.is_valid():
        try:
            # Blank secrets keep the stored value (the service's rule).
            services.save_channel(request.user, WhatsAppNumber, number, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
            kept.keep(form)
        else:
            kept.clear()
            messages.success(
                request, _("WhatsApp number %(phone)s saved.") % {"phone": number.phone}
            )
            return redirect("numbers")
    return render(
        request,
        "channels_integrations/number_form.html",
        {"form": form, "number": number, "title": title},
    )


def _set_active(request, pk, active: bool):
    number = _number_or_404(request.user, pk)
    number_services.set_number_active(request.user, number, active)
    if active:
        messages.success(
            request, _("WhatsApp number %(phone)s reactivated.") % {"phone": number.phone}
        )
    else:
        messages.success(
            request,
            _(
                "WhatsApp number %(phone)s deactivated: it keeps its history and sends and receives nothing until you reactivate it."
            )
            % {"phone": number.phone},
        )
    return redirect("numbers")


@company_member_required
@company_admin_required
@require_POST
def number_deactivate(request, pk):
    return _set_active(request, pk, False)


@company_member_required
@company_admin_required
@require_POST
def number_reactivate(request, pk):
    return _set_active(request, pk, True)


@company_member_required
@company_admin_required
@require_POST
def number_session_connect(request, pk):
    """Connect / reconnect a QR-linked number: a fresh pairing shows its QR here, live."""
    number = _number_or_404(request.user, pk)
    try:
        sessions.initialize_session(request.user, number, wait_seconds=0)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Connecting %(phone)s: scan the QR code below when it appears.")
            % {"phone": number.phone},
        )
    return redirect(f"{reverse('numbers')}#session-{number.pk}")


@company_member_required
@company_admin_required
@require_POST
def number_session_logout(request, pk):
    number = _number_or_404(request.user, pk)
    try:
        sessions.logout_session(request.user, number)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("%(phone)s is logged out; connect to scan a new QR code.") % {"phone": number.phone},
        )
    return redirect(f"{reverse('numbers')}#session-{number.pk}")


@company_member_required
@company_admin_required
def number_delete(request, pk):
    number = _number_or_404(request.user, pk)
    phone = str(number.phone)
    form = ConfirmDeleteForm(request.POST if request.method == "POST" else None, expected=phone)
    error, status = None, 200
    if form.is_valid():
        try:
            outcome = number_services.delete_number(request.user, number)
        except number_services.NumberDeletionFailed as failure:
            # Rolled back: every row is still there. The service logged it with the number id.
            error, status = failure.cause, 503
            number.refresh_from_db()  # it is back, deactivated, with the error recorded
            form = ConfirmDeleteForm(expected=phone)
        else:
            if outcome == "deleting":
                messages.info(
                    request,
                    _(
                        "WhatsApp number %(phone)s is being deleted in the background. It is already hidden and receives and sends nothing; this page tells you when it is gone."
                    )
                    % {"phone": phone},
                )
            else:
                messages.success(
                    request,
                    _("WhatsApp number %(phone)s and everything under it were deleted.")
                    % {"phone": phone},
                )
            return redirect("numbers")
    preview = number_services.deletion_preview(number)
    return render(
        request,
        "channels_integrations/number_delete.html",
        {
            "number": number,
            "preview": preview,
            "in_background": preview["total"] > settings.NUMBER_DELETE_SYNC_LIMIT,
            "form": form,
            "error": error,
        },
        status=status,
    )


# ---------------------------------------------------------------- message templates


@company_member_required
def number_templates(request, pk):
    """The number's message templates as last synced; admins sync them from Meta here."""
    number = _number_or_404(request.user, pk)
    rows = list(template_services.number_templates(number))
    for template in rows:
        template.texts = template_services.texts_of(template)
        template.header_name = template_services.header_filename(template)
    return render(
        request,
        "channels_integrations/number_templates.html",
        {
            "number": number,
            "templates": rows,
            "is_cloud": number.provider == WhatsAppNumber.Provider.CLOUD,
        },
    )


@company_member_required
@company_admin_required
@require_POST
def number_template_header(request, pk, template_pk):
    """An admin sets the file a template's media header sends (image, video, document)."""
    number = _number_or_404(request.user, pk)
    template = get_object_or_404(template_services.number_templates(number), pk=template_pk)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, _("Choose a file for the header."))
        return redirect("number_templates", number.pk)
    try:
        template_services.set_header_file(request.user, template, upload)
    except ValidationError as exc:
        for problem in exc.message_dict.get("file", []):
            messages.error(request, problem)
    else:
        messages.success(
            request,
            _("The header file of “%(name)s” is set: the template is offered now.")
            % {"name": template.name},
        )
    return redirect("number_templates", number.pk)


@company_member_required
@company_admin_required
@require_POST
def number_templates_sync(request, pk):
    number = _number_or_404(request.user, pk)
    try:
        counts = template_services.sync_templates(number)
    except template_services.TemplateSyncError as exc:
        messages.error(request, _("Templates not synced: %(reason)s") % {"reason": exc.reason})
    else:
        messages.success(
            request,
            _("%(templates)d templates synced (%(approved)d approved, %(removed)d removed).")
            % counts,
        )
    return redirect("number_templates", number.pk)
