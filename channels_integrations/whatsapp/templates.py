"""WhatsApp Cloud message templates: synced from the number's business account (Graph
`GET /{waba-id}/message_templates`), offered when approved, filled and rendered for a send.

A template's components are kept as Meta describes them. We fill the numbered placeholders
({{1}}, {{2}} ...) of its text header and its body; a media header (image, video, document)
takes the file an admin set for it on the templates page (offered once it is set); a template
that needs anything else (a location header, a variable in a button URL, named parameters) is
stored but marked unsupported and never offered.
"""

import logging
import re
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from messaging.channels import OutboundFile, TemplateComponent, TemplateOption, TemplatePart

from ..models import WhatsAppNumber, WhatsAppTemplate
from . import cloud

logger = logging.getLogger(__name__)

APPROVED = "APPROVED"
PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")
NAMED_PLACEHOLDER = re.compile(r"\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
FILLED = ("header", "body")  # the components whose placeholders we fill
VARIABLE_MAX_LENGTH = 1024


class TemplateSyncError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- reading Meta's description


def _placeholders(text: str) -> int:
    """How many numbered placeholders a text has ({{1}} ... {{n}}: the highest number)."""
    numbers = [int(found) for found in PLACEHOLDER.findall(text or "")]
    return max(numbers, default=0)


MEDIA_HEADERS = ("image", "video", "document")


def header_format(components) -> str:
    """The media header's format ("image", "video", "document", or "location"), "" if none."""
    for component in components if isinstance(components, list) else []:
        if isinstance(component, dict) and str(component.get("type", "")).lower() == "header":
            found = str(component.get("format", "TEXT")).lower()
            return "" if found == "text" else found[:10]
    return ""


def describe(components) -> tuple[dict, bool, dict]:
    """(variables per component, supported, text per component) of Meta's components."""
    variables, texts, supported = {}, {}, True
    if header_format(components) not in ("", *MEDIA_HEADERS):
        supported = False  # a LOCATION header
    for component in components if isinstance(components, list) else []:
        if not isinstance(component, dict):
            continue
        kind = str(component.get("type", "")).lower()
        text = component.get("text") if isinstance(component.get("text"), str) else ""
        if kind in ("header", "body", "footer"):
            texts[kind] = text
            if NAMED_PLACEHOLDER.search(text):
                supported = False
            if kind in FILLED and (count := _placeholders(text)):
                variables[kind] = count
        elif kind == "buttons":
            for button in component.get("buttons") or []:
                if isinstance(button, dict) and PLACEHOLDER.search(str(button.get("url", ""))):
                    supported = False
    return variables, supported, texts


def render(texts: dict, filled: dict) -> str:
    """The text the client reads: header, body and footer, placeholders replaced."""

    def fill(kind):
        values = filled.get(kind, [])
        return PLACEHOLDER.sub(
            lambda match: (
                values[int(match.group(1)) - 1]
                if 0 < int(match.group(1)) <= len(values)
                else match.group(0)
            ),
            texts.get(kind, ""),
        )

    return "\n\n".join(part for part in (fill("header"), fill("body"), fill("footer")) if part)


def texts_of(template: WhatsAppTemplate) -> dict:
    return describe(template.components)[2]


# ---------------------------------------------------------------- sync


def sync_templates(number: WhatsAppNumber) -> dict:
    """Read every template of the number's business account and store them: new ones
    created, known ones updated, those Meta no longer lists deleted. Returns counts."""
    if number.provider != WhatsAppNumber.Provider.CLOUD:
        raise TemplateSyncError(_("Only Cloud API numbers have message templates."))
    if not number.cloud_business_account_id or not number.cloud_access_token:
        raise TemplateSyncError(
            _("Set the business account id and the access token of this number first.")
        )
    try:
        fetched = cloud.fetch_templates(number.cloud_access_token, number.cloud_business_account_id)
    except cloud.TemplateFetchError as exc:
        logger.warning("templates: sync of number=%s failed: %s", number.pk, exc.reason)
        raise TemplateSyncError(exc.reason) from exc
    now = timezone.now()
    rows = {}
    for item in fetched:
        name = str(item.get("name") or "")[:512]
        language = str(item.get("language") or "")[:20]
        if not name or not language:
            continue
        components = item.get("components") if isinstance(item.get("components"), list) else []
        variables, supported, _texts = describe(components)
        rows[(name, language)] = WhatsAppTemplate(
            number=number,
            name=name,
            language=language,
            category=str(item.get("category") or "")[:30],
            status=str(item.get("status") or "")[:30],
            components=components,
            variables=variables,
            supported=supported,
            header_format=header_format(components),
            synced_at=now,
        )
    with transaction.atomic():
        WhatsAppTemplate.objects.bulk_create(
            rows.values(),
            update_conflicts=True,
            unique_fields=["number", "name", "language"],
            update_fields=[
                "category",
                "status",
                "components",
                "variables",
                "supported",
                "header_format",
                "synced_at",
            ],
        )
        removed, _by_model = (
            WhatsAppTemplate.objects.filter(number=number).exclude(synced_at=now).delete()
        )
    approved = sum(1 for row in rows.values() if row.status == APPROVED)
    logger.info(
        "templates: number=%s synced %d (%d approved, %d removed)",
        number.pk,
        len(rows),
        approved,
        removed,
    )
    return {"templates": len(rows), "approved": approved, "removed": removed}


def sync_all() -> dict:
    """Beat (daily): every active Cloud number with a business account id."""
    numbers = WhatsAppNumber.objects.filter(
        provider=WhatsAppNumber.Provider.CLOUD, is_active=True
    ).exclude(cloud_business_account_id="")
    done = failed = 0
    for number in numbers.exclude(status=WhatsAppNumber.Status.DELETING):
        try:
            sync_templates(number)
            done += 1
        except TemplateSyncError:
            failed += 1
    return {"synced": done, "failed": failed}


# ---------------------------------------------------------------- selectors


def number_templates(number: WhatsAppNumber):
    return WhatsAppTemplate.objects.filter(number=number).order_by("name", "language")


OFFERABLE = Q(header_format="") | ~Q(header_file="")  # a media header needs its file


def offered_templates(number: WhatsAppNumber):
    """What may be sent: approved templates we can fill (media headers with their file)."""
    return number_templates(number).filter(OFFERABLE, status=APPROVED, supported=True)


def company_offered_templates(user):
    """Offered templates of the user's company's active Cloud numbers (broadcast form)."""
    return (
        WhatsAppTemplate.objects.filter(
            number__company_id=user.company_id,
            number__is_active=True,
            number__provider=WhatsAppNumber.Provider.CLOUD,
            status=APPROVED,
            supported=True,
        )
        .filter(OFFERABLE)
        .exclude(number__status=WhatsAppNumber.Status.DELETING)
        .select_related("number")
        .order_by("number__phone", "name", "language")
    )


def option(template: WhatsAppTemplate) -> TemplateOption:
    return TemplateOption(
        name=template.name,
        language=template.language,
        category=template.category,
        texts=texts_of(template),
        variables=dict(template.variables),
    )


# ---------------------------------------------------------------- a send


def resolve(number: WhatsAppNumber, name: str, language: str, variables) -> TemplatePart:
    """The template `name`/`language` of this number, filled with `variables`
    ({"body": ["Ann", "42"], "header": [...]}); ValidationError naming the field."""
    template = number_templates(number).filter(name=name or "", language=language or "").first()
    if template is None:
        raise ValidationError(
            {
                "template": [
                    _(
                        "This number has no template “%(name)s” in “%(language)s”; sync the "
                        "templates or choose another."
                    )
                    % {"name": name, "language": language}
                ]
            }
        )
    if template.status != APPROVED:
        raise ValidationError(
            {
                "template": [
                    _("The template “%(name)s” is not approved (%(status)s).")
                    % {"name": name, "status": template.status or "?"}
                ]
            }
        )
    if not template.supported:
        raise ValidationError(
            {
                "template": [
                    _(
                        "The template “%(name)s” needs a location header or a button "
                        "variable, which cannot be sent from here."
                    )
                    % {"name": name}
                ]
            }
        )
    if template.header_format and not template.header_file:
        raise ValidationError(
            {
                "template": [
                    _(
                        "The template “%(name)s” has a %(format)s header: an admin sets its "
                        "file on the number's templates page first."
                    )
                    % {"name": name, "format": template.header_format}
                ]
            }
        )
    filled = fill_variables(template.variables, variables)
    components = tuple(
        TemplateComponent(type=kind, parameters=tuple(filled[kind]))
        for kind in FILLED
        if kind in filled
    )
    return TemplatePart(
        name=template.name,
        language=template.language,
        components=components,
        rendered=render(texts_of(template), filled),
        header=header_file(template),
    )


def header_filename(template: WhatsAppTemplate) -> str:
    """The header file's own name (without the storage folder), as pages show and Meta receives it."""
    return PurePosixPath(template.header_file.name).name if template.header_file else ""


def header_file(template: WhatsAppTemplate) -> OutboundFile | None:
    if not template.header_format or not template.header_file:
        return None
    return OutboundFile(
        storage_name=template.header_file.name,
        filename=header_filename(template),
        content_type=template.header_content_type,
        size=template.header_file.size,
        kind=template.header_format,
    )


def set_header_file(actor, template: WhatsAppTemplate, upload) -> WhatsAppTemplate:
    """An admin's file for a template's media header, checked against what Cloud numbers send
    as that kind (type and size); the old file is removed after commit."""
    from messaging import channels

    if template.header_format not in MEDIA_HEADERS:
        raise ValidationError({"file": [_("This template has no media header.")]})
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip()
    capabilities = channels.get("whatsapp").capabilities
    kind = channels.file_kind(capabilities, "WhatsApp", upload.name, content_type, upload.size)
    if kind != template.header_format:
        raise ValidationError(
            {
                "file": [
                    _("The header of “%(name)s” takes a %(format)s, not a %(kind)s.")
                    % {"name": template.name, "format": template.header_format, "kind": kind}
                ]
            }
        )
    old = template.header_file.name
    with transaction.atomic():
        template.header_file.save(upload.name, upload, save=False)
        template.header_content_type = content_type[:255]
        template.save(update_fields=["header_file", "header_content_type"])
        if old:
            transaction.on_commit(lambda: template.header_file.storage.delete(old), robust=True)
    logger.info("templates: header file of template=%s set by user=%s", template.pk, actor.pk)
    return template


def fill_variables(expected: dict, given) -> dict:
    """Check `given` against the template's counts; the filled values per component."""
    if given is None:
        given = {}
    errors = []
    if not isinstance(given, dict):
        raise ValidationError(
            {"template.variables": [_("Give the variables per component, e.g. {“body”: [...]}")]}
        )
    for kind in given:
        if kind not in expected:
            errors.append(
                _("This template has no variables in its %(component)s.") % {"component": kind}
            )
    filled = {}
    for kind, count in expected.items():
        values = given.get(kind, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors.append(
                _("The %(component)s variables are a list of texts.") % {"component": kind}
            )
            continue
        values = [value.strip() for value in values]
        if len(values) != count:
            errors.append(
                _("The %(component)s needs %(count)d variable(s); %(given)d given.")
                % {"component": kind, "count": count, "given": len(values)}
            )
        elif any(not value for value in values):
            errors.append(_("Fill every variable of the %(component)s.") % {"component": kind})
        elif any(len(value) > VARIABLE_MAX_LENGTH for value in values):
            errors.append(
                _("A variable has at most %(limit)d characters.") % {"limit": VARIABLE_MAX_LENGTH}
            )
        else:
            filled[kind] = values
    if errors:
        raise ValidationError({"template.variables": errors})
    return filled
