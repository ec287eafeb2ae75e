"""The signed-in user's own language (profile page) wins over the browser's; LocaleMiddleware
has chosen one from the cookie or Accept-Language before this runs."""

from django.utils import translation


class UserLanguage:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        language = getattr(user, "language", "") if user is not None else ""
        if language and user.is_authenticated:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
