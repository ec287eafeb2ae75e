"""API plumbing shared by every app: error shape and the tenant-scoped viewset base."""

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.scoping import scoped

logger = logging.getLogger(__name__)


def exception_handler(exc, context):
    """DRF's handler, plus: model ValidationErrors and constraint violations become 400s
    naming the field instead of 500s."""
    if isinstance(exc, DjangoValidationError):
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, IntegrityError):
        logger.warning("api: integrity error in %s", context["view"].__class__.__name__)
        return Response(
            {"non_field_errors": ["This conflicts with an existing record."]},
            status=status.HTTP_409_CONFLICT,
        )
    return drf_exception_handler(exc, context)


def nested_errors(exc: DjangoValidationError) -> dict:
    """A service's errors as the API names fields: "template.variables" nests under
    "template" (as DRF nests a nested serializer's errors)."""
    if not hasattr(exc, "error_dict"):
        return {"non_field_errors": exc.messages}
    nested: dict = {}
    for name, messages in exc.message_dict.items():
        head, _dot, rest = name.partition(".")
        if rest:
            target = nested.setdefault(head, {})
            if isinstance(target, list):  # "template" and "template.x": keep both
                target = nested[head] = {"non_field_errors": target}
            target[rest] = messages
        elif isinstance(nested.get(head), dict):
            nested[head]["non_field_errors"] = messages
        else:
            nested[head] = messages
    return nested


class CompanyScopedViewSet(viewsets.ModelViewSet):
    """Reads only the actor's company's rows (others are a 404); creates into that company."""

    model = None

    def get_queryset(self):
        return scoped(self.model, self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["company"] = getattr(self.request.user, "company", None)
        return context

    def perform_create(self, serializer):
        serializer.save(company=self.request.user.company)


class WriteOnlySecretField(serializers.CharField):
    """A secret: accepted on write, never returned (the read side says only whether it is set)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("write_only", True)
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", True)
        kwargs.setdefault("style", {"input_type": "password"})
        super().__init__(**kwargs)
