import logging

from accounts.models import ApiToken, User

logger = logging.getLogger(__name__)


def issue_api_token(user: User, name: str) -> tuple[ApiToken, str]:
    token, raw = ApiToken.issue(user, name)
    logger.info("api token issued id=%s user=%s", token.pk, user.pk)
    return token, raw


def revoke_api_token(user: User, token: ApiToken) -> None:
    if token.user_id != user.pk:
        raise PermissionError("Only the owner can revoke an API token.")
    token_id = token.pk
    token.delete()
    logger.info("api token revoked id=%s user=%s", token_id, user.pk)


def set_language(user, language: str) -> None:
    """The user's own language ("" follows the browser); one of settings.LANGUAGES."""
    from django.conf import settings

    if language and language not in dict(settings.LANGUAGES):
        raise ValueError(language)
    user.language = language
    user.save(update_fields=["language"])
