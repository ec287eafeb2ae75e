from django import forms
from django.utils.translation import gettext_lazy as _

from . import rendering
from .models import CannedReply


def variables_help() -> str:
    return _("Variables: %s") % rendering.known_variables()


class CannedReplyForm(forms.ModelForm):
    """Title, shortcut and text; `scope` (only when creating, and only admins may pick the
    company's). The service validates again and names the field of any error."""

    scope = forms.ChoiceField(
        label=_("Who sees it"),
        choices=[("personal", _("Only me")), ("company", _("Everyone in the company"))],
        initial="personal",
        required=False,
    )

    class Meta:
        model = CannedReply
        fields = ["title", "shortcut", "body"]
        widgets = {
            "title": forms.TextInput(attrs={"class": "input", "autocomplete": "off"}),
            "shortcut": forms.TextInput(
                attrs={"class": "input", "autocomplete": "off", "placeholder": "greeting"}
            ),
            "body": forms.Textarea(attrs={"class": "input", "rows": 6}),
        }

    def __init__(self, *args, user, creating: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["shortcut"].help_text = _("Type / and this in the reply box to insert it.")
        self.fields["body"].help_text = variables_help()
        self.fields["scope"].widget.attrs["class"] = "input"
        if not creating or not user.is_company_admin:
            del self.fields["scope"]
