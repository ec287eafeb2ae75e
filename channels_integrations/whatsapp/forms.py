"""Settings → WhatsApp forms. Plain forms: model validation and per-company uniqueness are the
service's job (services.save_channel), whose errors the views put back on these fields."""

import re

from django import forms
from django.utils.translation import gettext as _
from phonenumber_field.formfields import PhoneNumberField

from teams.forms import TeamRoutingMixin

from ..forms import SecretInput
from ..models import WhatsAppNumber

NUMBER_SECRETS = ("cloud_access_token", "cloud_app_secret", "cloud_verify_token")


def _max_length(name):
    return WhatsAppNumber._meta.get_field(name).max_length


class WhatsAppNumberForm(TeamRoutingMixin, forms.Form):
    phone = PhoneNumberField(
        help_text="International format with country code, e.g. +49 151 23456789.",
        widget=forms.TextInput(attrs={"type": "tel", "placeholder": "+49 151 23456789"}),
    )
    display_name = forms.CharField(max_length=_max_length("display_name"), required=False)
    provider = forms.ChoiceField(
        choices=WhatsAppNumber.Provider.choices,
        initial=WhatsAppNumber.Provider.CLOUD,
        widget=forms.RadioSelect,
    )
    cloud_phone_number_id = forms.CharField(
        max_length=_max_length("cloud_phone_number_id"),
        required=False,
        label="Cloud API phone number id",
    )
    cloud_business_account_id = forms.CharField(
        max_length=_max_length("cloud_business_account_id"),
        required=False,
        label="Cloud API business account id",
        help_text="The WhatsApp Business Account id (digits): where message templates are read.",
    )
    cloud_access_token = forms.CharField(
        required=False, widget=SecretInput, label="Cloud API access token"
    )
    cloud_app_secret = forms.CharField(required=False, widget=SecretInput, label="App secret")
    cloud_verify_token = forms.CharField(
        required=False, widget=SecretInput, label="Webhook verify token"
    )

    def __init__(self, *args, secrets_set: dict[str, bool] | None = None, **kwargs):
        """`secrets_set` (editing): which secrets are stored, so the help text can say that a
        blank field keeps the stored value. The values themselves never reach the form."""
        super().__init__(*args, **kwargs)
        for name in NUMBER_SECRETS:
            if secrets_set is None:
                self.fields[name].help_text = "Only for the Cloud API."
            elif secrets_set.get(name):
                self.fields[name].help_text = "Set. Leave blank to keep the stored value."
            else:
                self.fields[name].help_text = "Not set."


class ConfirmDeleteForm(forms.Form):
    """The user types the number's phone to confirm; spaces and dashes don't matter."""

    confirm_phone = forms.CharField(
        label="Type the phone number to confirm",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, expected: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.fields["confirm_phone"].widget.attrs["placeholder"] = expected

    def clean_confirm_phone(self):
        typed = re.sub(r"[\s\-().]", "", self.cleaned_data["confirm_phone"])
        if typed.lstrip("+") != self.expected.lstrip("+"):
            raise forms.ValidationError(
                _("That is not this number. Type %(expected)s to confirm the deletion.")
                % {"expected": self.expected}
            )
        return typed
