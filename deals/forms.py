from django import forms
from django.utils.translation import gettext_lazy as _

from .currencies import ISO_4217
from .models import Deal


class DealForm(forms.Form):
    """A deal's details as a person edits them; the service validates and saves."""

    title = forms.CharField(label=_("Title"), max_length=200)
    amount = forms.DecimalField(
        label=_("Amount"), max_digits=14, decimal_places=2, min_value=0, initial=0
    )
    currency = forms.ChoiceField(
        label=_("Currency"), choices=[(c, c) for c in sorted(ISO_4217)], initial="EUR"
    )
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)
    expected_close_date = forms.DateField(
        label=_("Expected close date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args, members=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].choices = [("", _("Nobody"))] + [
            (m.pk, m.display_name) for m in members
        ]


class CloseForm(forms.Form):
    status = forms.ChoiceField(choices=Deal.Status.choices)
    lost_reason = forms.CharField(label=_("Reason"), max_length=300, required=False)


class PipelineForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    stages = forms.CharField(
        label=_("Stages"),
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("One stage per line, in board order."),
    )


class PipelineDeleteForm(forms.Form):
    confirm_name = forms.CharField(label=_("Type the pipeline's name to confirm"), max_length=100)

    def __init__(self, *args, pipeline=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline

    def clean_confirm_name(self):
        value = self.cleaned_data["confirm_name"].strip()
        if value != self.pipeline.name:
            raise forms.ValidationError(_("This is not the pipeline's name."))
        return value
