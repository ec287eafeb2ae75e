"""Bot pages: a number's bots, a bot with its ordered rules, and their forms.

Every member may look; only company admins change anything (others get a 403 on any write,
and the pages show them no forms). Reads are tenant-scoped (another company's number, bot or
rule is a 404 like a missing one); writes go through channels_integrations.services.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.scoping import get_scoped_or_404, scoped
from accounts.views import company_member_required

from ...models import Bot, BotRule, WhatsAppNumber
from ...views.access import company_admin_required
from .. import bots as services
from ..bots import TEXT_LIMIT

# ---------------------------------------------------------------- forms


class BotForm(forms.Form):
    """Plain form; validation beyond the field types is the service's (errors come back)."""

    name = forms.CharField(max_length=Bot._meta.get_field("name").max_length)
    greeting = forms.CharField(
        required=False,
        max_length=TEXT_LIMIT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Optional. Sent once, when a client writes for the first time and no rule "
        "matches.",
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


class RuleForm(forms.Form):
    match_type = forms.ChoiceField(
        choices=BotRule.MatchType.choices, initial=BotRule.MatchType.KEYWORD, label="Match"
    )
    trigger = forms.CharField(
        max_length=BotRule._meta.get_field("trigger").max_length,
        help_text="Keyword: a word or phrase found whole in the message, any case (“price” "
        "matches “Price?” but not “prices”). Regular expression: searched anywhere, any case.",
    )
    reply_text = forms.CharField(
        max_length=TEXT_LIMIT, widget=forms.Textarea(attrs={"rows": 4}), label="Reply"
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")


def _save_form(form, save) -> bool:
    """Run `save(**cleaned_data)`; a service ValidationError lands on the form's fields."""
    if not form.is_valid():
        return False
    try:
        save(**form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)
        return False
    return True


def _flash_errors(request, save) -> bool:
    """Run `save()`; a ValidationError (a row saved before today's checks) becomes a message."""
    try:
        save()
    except ValidationError as exc:
        for error in exc.messages:
            messages.error(request, error)
        return False
    return True


# ---------------------------------------------------------------- lookups


def _number(request, pk) -> WhatsAppNumber:
    numbers = WhatsAppNumber.objects.exclude(status=WhatsAppNumber.Status.DELETING)
    return get_scoped_or_404(numbers, request.user, pk=pk)


def _bot(request, pk) -> Bot:
    bots = Bot.objects.filter(number__isnull=False).select_related("number")
    bots = bots.exclude(number__status=WhatsAppNumber.Status.DELETING)
    return get_scoped_or_404(bots, request.user, pk=pk)


def _rule(request, pk) -> BotRule:
    rules = BotRule.objects.filter(bot__number__isnull=False).select_related("bot__number")
    rules = rules.exclude(bot__number__status=WhatsAppNumber.Status.DELETING)
    return get_scoped_or_404(rules, request.user, pk=pk)


# ---------------------------------------------------------------- bots


@company_member_required
def number_bots(request, number_pk):
    number = _number(request, number_pk)
    bots = scoped(Bot, request.user).filter(number=number).annotate(rules_count=Count("rules"))
    return render(request, "channels_integrations/bot_list.html", {"number": number, "bots": bots})


@company_member_required
@company_admin_required
def number_bot_create(request, number_pk):
    number = _number(request, number_pk)
    form = BotForm(request.POST if request.method == "POST" else None)
    created = {}

    def save(**fields):
        created["bot"] = services.create_bot(request.user, number, **fields)

    if request.method == "POST" and _save_form(form, save):
        messages.success(
            request, _("Bot “%(bot)s” created. Now add its rules.") % {"bot": created["bot"]}
        )
        return redirect("bot_detail", pk=created["bot"].pk)
    return render(request, "channels_integrations/bot_form.html", {"form": form, "number": number})


@company_member_required
def bot_detail(request, pk):
    bot = _bot(request, pk)
    rules = list(bot.rules.order_by("position", "id"))
    return render(
        request,
        "channels_integrations/bot_detail.html",
        {
            "bot": bot,
            "number": bot.number,
            "rules": rules,
            "rule_form": RuleForm() if request.user.is_company_admin else None,
        },
    )


@company_member_required
@company_admin_required
def bot_edit(request, pk):
    bot = _bot(request, pk)
    title = str(bot)  # before the service assigns (possibly rejected) values
    if request.method == "POST":
        form = BotForm(request.POST)
    else:
        form = BotForm(
            initial={"name": bot.name, "greeting": bot.greeting, "is_active": bot.is_active}
        )
    if request.method == "POST" and _save_form(
        form, lambda **fields: services.update_bot(request.user, bot, **fields)
    ):
        messages.success(request, _("Bot “%(bot)s” saved.") % {"bot": bot})
        return redirect("bot_detail", pk=bot.pk)
    return render(
        request,
        "channels_integrations/bot_form.html",
        {"form": form, "bot": bot, "number": bot.number, "title": title},
    )


@company_member_required
@require_POST
@company_admin_required
def bot_toggle(request, pk):
    """Activate/deactivate; `next=list` returns to the number's bots, else to the bot."""
    bot = _bot(request, pk)
    if _flash_errors(
        request, lambda: services.update_bot(request.user, bot, is_active=not bot.is_active)
    ):
        done = _("Bot “%(bot)s” activated.") if bot.is_active else _("Bot “%(bot)s” deactivated.")
        messages.success(request, done % {"bot": bot})
    if request.POST.get("next") == "list":
        return redirect("number_bots", number_pk=bot.number_id)
    return redirect("bot_detail", pk=bot.pk)


@company_member_required
@company_admin_required
def bot_delete(request, pk):
    """GET: what goes with the bot, counted; POST: delete it."""
    bot = _bot(request, pk)
    if request.method == "POST":
        services.delete_bot(request.user, bot)
        messages.success(request, _("Bot “%(bot)s” and its rules deleted.") % {"bot": bot})
        return redirect("number_bots", number_pk=bot.number_id)
    return render(
        request,
        "channels_integrations/bot_confirm_delete.html",
        {"bot": bot, "number": bot.number, "rules_count": bot.rules.count()},
    )


# ---------------------------------------------------------------- rules


@company_member_required
@company_admin_required
def bot_rule_create(request, pk):
    bot = _bot(request, pk)
    form = RuleForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and _save_form(
        form, lambda **fields: services.create_rule(request.user, bot, **fields)
    ):
        messages.success(request, _("Rule added."))
        return redirect("bot_detail", pk=bot.pk)
    return render(
        request,
        "channels_integrations/bot_rule_form.html",
        {"form": form, "bot": bot, "number": bot.number},
    )


@company_member_required
@company_admin_required
def botrule_edit(request, pk):
    rule = _rule(request, pk)
    if request.method == "POST":
        form = RuleForm(request.POST)
    else:
        form = RuleForm(initial={name: getattr(rule, name) for name in services.RULE_FIELDS})
    if request.method == "POST" and _save_form(
        form, lambda **fields: services.update_rule(request.user, rule, **fields)
    ):
        messages.success(request, _("Rule saved."))
        return redirect("bot_detail", pk=rule.bot_id)
    return render(
        request,
        "channels_integrations/bot_rule_form.html",
        {"form": form, "rule": rule, "bot": rule.bot, "number": rule.bot.number},
    )


@company_member_required
@require_POST
@company_admin_required
def botrule_delete(request, pk):
    rule = _rule(request, pk)
    services.delete_rule(request.user, rule)
    messages.success(request, _("Rule deleted."))
    return redirect("bot_detail", pk=rule.bot_id)


@company_member_required
@require_POST
@company_admin_required
def botrule_move(request, pk):
    rule = _rule(request, pk)
    offset = {"up": -1, "down": 1}.get(request.POST.get("direction", ""))
    if offset is None:
        messages.error(request, _("Move a rule up or down."))
    else:
        services.move_rule(request.user, rule, offset)
    return redirect("bot_detail", pk=rule.bot_id)


@company_member_required
@require_POST
@company_admin_required
def botrule_toggle(request, pk):
    rule = _rule(request, pk)
    if _flash_errors(
        request, lambda: services.update_rule(request.user, rule, is_active=not rule.is_active)
    ):
        messages.success(
            request, _("Rule activated.") if rule.is_active else _("Rule deactivated.")
        )
    return redirect("bot_detail", pk=rule.bot_id)
