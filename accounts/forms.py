from django import forms

from accounts.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=ApiToken._meta.get_field("name").max_length,
        help_text="What uses it, e.g. “reporting script”.",
    )
