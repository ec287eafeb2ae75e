from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text=_("What uses it, e.g. “reporting script”."),
    )


class ProfileForm(forms.Form):
    """What a user sets for themselves: the language of their pages."""

    language = forms.ChoiceField(
        label=_("Language"),
        required=False,
        choices=[("", _("As my browser asks"))] + list(settings.LANGUAGES),
        help_text=_("The language of your pages, dates and numbers."),
    )
