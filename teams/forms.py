from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Role

from .models import WEEKDAYS


class InviteForm(forms.Form):
    email = forms.EmailField(
        label=_("Email"),
        required=False,
        help_text=_("We mail the link there. Leave empty to get a link to copy instead."),
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.AGENT)


class AcceptForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    password = forms.CharField(label=_("Password"), widget=forms.PasswordInput)
    password_again = forms.CharField(label=_("Password again"), widget=forms.PasswordInput)

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", _("The two passwords differ."))
        return data


class MemberForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    max_open_conversations = forms.IntegerField(
        label=_("Open conversations at most"),
        min_value=0,
        required=False,
        help_text=_("Round-robin gives no more than this many (empty: no limit)."),
    )


class VisibilityForm(forms.Form):
    agents_see_all_conversations = forms.TypedChoiceField(
        label=_("Agents see"),
        coerce=lambda value: value == "all",
        choices=(
            ("all", _("Every conversation")),
            ("own", _("Only their own and unassigned conversations")),
        ),
    )


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    members = forms.MultipleChoiceField(
        label=_("Members"), required=False, widget=forms.CheckboxSelectMultiple
    )
    hours_enabled = forms.BooleanField(label=_("Keep business hours"), required=False)
    timezone = forms.CharField(label=_("Time zone"), max_length=64, initial="UTC")
    away_message = forms.CharField(
        label=_("Away reply"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Sent outside business hours, at most once a day per conversation."),
    )

    def __init__(self, *args, people=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["members"].choices = [(str(p.pk), p.display_name) for p in people]
        for day, label in enumerate(WEEKDAYS):
            self.fields[f"open_{day}"] = forms.TimeField(
                label=_("%(day)s opens") % {"day": label},
                required=False,
                widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            )
            self.fields[f"close_{day}"] = forms.TimeField(
                label=_("%(day)s closes") % {"day": label},
                required=False,
                widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            )

    def day_fields(self):
        return [
            (label, self[f"open_{day}"], self[f"close_{day}"]) for day, label in enumerate(WEEKDAYS)
        ]

    def main_fields(self):
        return [
            self[name] for name in ("name", "members", "hours_enabled", "timezone", "away_message")
        ]

    def hours(self) -> dict:
        hours = {}
        for day in range(7):
            start, end = self.cleaned_data.get(f"open_{day}"), self.cleaned_data.get(f"close_{day}")
            if start and end:
                hours[str(day)] = [start.strftime("%H:%M"), end.strftime("%H:%M")]
            elif start or end:
                self.add_error(f"close_{day}", _("Give both the opening and the closing time."))
        return hours

    @staticmethod
    def initial_for(team) -> dict:
        initial = {
            "name": team.name,
            "members": [str(pk) for pk in team.members.values_list("pk", flat=True)],
            "hours_enabled": team.hours_enabled,
            "timezone": team.timezone,
            "away_message": team.away_message,
        }
        for day, (start, end) in (team.hours or {}).items():
            initial[f"open_{day}"], initial[f"close_{day}"] = start, end
        return initial


class TeamRoutingMixin:
    """Adds `team` and `distribution` to a channel row's settings form (numbers, Telegram
    accounts, mailboxes, Meta pages): pass `company` (whose teams are offered) and, when
    editing, `routing` (the row, for the initial values)."""

    def __init__(self, *args, company=None, routing=None, **kwargs):
        from .models import Distribution, Team

        super().__init__(*args, **kwargs)
        teams = Team.objects.filter(company=company) if company is not None else Team.objects.none()
        self.fields["team"] = forms.ModelChoiceField(
            queryset=teams,
            required=False,
            label=_("Team"),
            empty_label=_("No team"),
            help_text=_("Its new conversations go to this team (Settings → Teams)."),
        )
        self.fields["distribution"] = forms.TypedChoiceField(
            choices=Distribution.choices,
            required=False,
            empty_value=Distribution.NONE,
            initial=Distribution.NONE,
            label=_("Lead distribution"),
            help_text=_("How a new conversation is assigned among the team's agents."),
        )
        if routing is not None and routing.pk:
            self.initial.setdefault("team", routing.team_id)
            self.initial.setdefault("distribution", routing.distribution)

    def clean(self):
        data = super().clean()
        for name in ("team", "distribution"):
            if self.is_bound and name not in self.data:
                data.pop(name, None)  # a form (or script) that does not send it keeps the row's
        return data
