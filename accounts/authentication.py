import logging

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from crm import coordination

from .models import ApiToken

logger = logging.getLogger(__name__)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` (or `Token <token>`)."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                _("Authorization header must be 'Bearer <token>'.")
            )
        user = ApiToken.authenticate(parts[1].decode(errors="replace"))
        if user is None:
            _count_failure(request)
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API token."))
        if user.language:  # as accounts.middleware does for the session: the user's own choice
            translation.activate(user.language)
            request._request.LANGUAGE_CODE = user.language
        return user, None

    def authenticate_header(self, request):
        return "Bearer"


def _count_failure(request) -> None:
    """Past API_TOKEN_FAILURES_PER_MINUTE wrong tokens from an address, a 429."""
    wait = count_wrong_token(request.META.get("REMOTE_ADDR", ""), "api")
    if wait:
        raise exceptions.Throttled(wait=wait)


def count_wrong_token(address: str, where: str) -> float:
    """One wrong API token from `address` (the API's header or a socket's ?token=, one count
    for both): 0.0, or the seconds it is throttled for. Logged with the address, never the
    token."""
    limit = settings.API_TOKEN_FAILURES_PER_MINUTE
    wait = coordination.acquire_slot_or_local(_failures_key(address), limit, 60)
    logger.warning("%s: wrong token from %s", where, address)
    if wait:
        logger.warning("%s: wrong tokens from %s throttled for %.0fs", where, address, wait)
    return wait


def tokens_throttled(address: str, where: str) -> bool:
    """Too many wrong tokens from `address` this minute: even a right one is refused."""
    limit = settings.API_TOKEN_FAILURES_PER_MINUTE
    wait = coordination.window_full(_failures_key(address), limit, 60)
    if wait:
        logger.warning("%s: wrong tokens from %s throttled for %.0fs", where, address, wait)
    return wait > 0


def _failures_key(address: str) -> str:
    return f"api-token-failures:{address}"


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Documents API tokens in the OpenAPI schema (drf-spectacular)."""

    target_class = "accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token from Settings → API tokens",
        }
