from django import forms
from phonenumber_field.formfields import PhoneNumberField

from crm.models import Client


def _max_length(name):
    return Client._meta.get_field(name).max_length


class ClientForm(forms.Form):
    """The client fields a person edits. A plain form: uniqueness and model validation are
    the service's job (crm.services), whose errors the view puts back on these fields."""

    name = forms.CharField(max_length=_max_length("name"), required=False)
    # Normalises "+49 151 2345 6789" to E.164; numbers must carry their country code.
    phone = PhoneNumberField(
        required=False,
        help_text="International format with country code, e.g. +49 151 23456789.",
        widget=forms.TextInput(attrs={"type": "tel", "placeholder": "+49 151 23456789"}),
    )
    email = forms.EmailField(max_length=_max_length("email"), required=False)
    telegram_user_id = forms.IntegerField(
        required=False, min_value=1, label="Telegram user id", help_text="The numeric id."
    )
    telegram_username = forms.CharField(
        max_length=_max_length("telegram_username"), required=False, label="Telegram username"
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)

    def clean_telegram_username(self):
        return self.cleaned_data["telegram_username"].strip().lstrip("@")
