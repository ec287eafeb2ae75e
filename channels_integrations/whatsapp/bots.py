"""Bots on WhatsApp numbers and on the sandbox (the test channel): their writes (bots and ordered rules), and the engine that answers
inbound messages through the normal outbound pipeline (`messaging.services.send_message`).

Matching (`rule_matches`):
- keyword: case-insensitive, the trigger as a whole word or phrase anywhere in the message.
  "price" matches "Price?" and "the price list", but not "prices" or "priceless"; a phrase
  "opening hours" matches "Opening   hours?" (any run of whitespace between its words). Word
  edges are Unicode-aware (letters, digits and underscore are word characters), so a trigger
  that begins or ends with punctuation ("c++") is matched with that punctuation as written.
- regex: a search (the `regex` module, Python `re` syntax) anywhere in the message,
  case-insensitive (turn that off inline with `(?-i:...)`), with a time limit per message
  (BOT_REGEX_TIMEOUT_SECONDS; running out is no match); patterns that backtrack for long on
  texts made of their own characters are refused on save.
Triggers and texts are saved stripped of leading/trailing whitespace (regexes too).
Only the first MATCH_TEXT_LIMIT characters of a message are matched.

The engine (`answer_inbound`) answers only inbound messages of a source that carries bots (a
WhatsApp number, the sandbox: BOT_PLATFORMS) while it is active, never
outbound ones (so never its own), never auto-submitted/bulk ones, at most once per inbound
message and bot (recorded on the reply as metadata `in_reply_to`, checked under a row lock),
and at most BOT_REPLY_LIMIT replies per conversation and bot per window (a loop with another
auto-responder stops there).
"""

import logging
import time
from datetime import timedelta
from functools import lru_cache

import regex
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.services import delete_in_database, save_validated
from messaging.models import Message
from messaging.services import send_message

from ..models import Bot, BotRule, WhatsAppNumber, regex_error
from ..sandbox import PLATFORM as SANDBOX
from ..sandbox.models import SandboxInbox
from . import PLATFORM

# The platforms whose sources carry bots, and the bot's field that names each one's source.
BOT_PLATFORMS = {PLATFORM: "number", SANDBOX: "sandbox"}

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096  # reply text and greeting: one WhatsApp message
MATCH_TEXT_LIMIT = 4096  # characters of an inbound message that rules look at
BOT_FIELDS = ("name", "is_active", "greeting")
RULE_FIELDS = ("match_type", "trigger", "reply_text", "is_active")


# ---------------------------------------------------------------- writes


def _require_own(actor, company_id) -> None:
    """Defence in depth: callers look rows up through accounts.scoping already."""
    if company_id is None or company_id != getattr(actor, "company_id", None):
        raise PermissionDenied(_("Not a row of your company."))


def _apply(instance, fields: dict, allowed: tuple[str, ...]) -> None:
    for name, value in fields.items():
        if name not in allowed:
            raise TypeError(f"{type(instance).__name__}: field {name!r} is not editable")
        if isinstance(value, str):
            value = value.strip()
        setattr(instance, name, value)


def _text_errors(value: str, field: str, *, required: bool) -> dict[str, list[str]]:
    if required and not value:
        return {field: ["This field is required."]}
    if len(value) > TEXT_LIMIT:
        return {field: [f"At most {TEXT_LIMIT} characters ({len(value)} given)."]}
    return {}


def _save(instance, errors: dict[str, list[str]]):
    """Our own checks first; then the model's (field validators, `clean`), all in one error."""
    if errors:
        try:
            instance.full_clean(validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                errors.setdefault(field, messages)
        raise ValidationError(errors)
    return save_validated(instance)


def _check_number(actor, number) -> None:
    if isinstance(number, SandboxInbox):
        if number.company_id != actor.company_id:
            raise ValidationError({"sandbox": [_("Choose your company's sandbox.")]})
        return
    if (
        number is None
        or number.company_id != actor.company_id
        or number.status == WhatsAppNumber.Status.DELETING
    ):
        raise ValidationError({"number": [_("Choose a WhatsApp number of your company.")]})


def create_bot(actor, number: WhatsAppNumber | SandboxInbox, **fields) -> Bot:
    """A bot on `number` (a WhatsApp number, or the sandbox), which must be the actor's
    company's (else a field error)."""
    _check_number(actor, number)
    if isinstance(number, SandboxInbox):
        bot = Bot(sandbox=number, company_id=number.company_id)
    else:
        bot = Bot(number=number, company_id=number.company_id)
    _apply(bot, fields, BOT_FIELDS)
    _save(bot, _text_errors(bot.greeting, "greeting", required=False))
    logger.info("bot created id=%s source=%s company=%s", bot.pk, number.pk, actor.company_id)
    return bot


def update_bot(actor, bot: Bot, **fields) -> Bot:
    _require_own(actor, bot.company_id)
    _apply(bot, fields, BOT_FIELDS)
    _save(bot, _text_errors(bot.greeting, "greeting", required=False))
    logger.info("bot updated id=%s company=%s", bot.pk, actor.company_id)
    return bot


def delete_bot(actor, bot: Bot) -> None:
    """The bot and its rules (one SQL DELETE; its past replies stay, without the bot)."""
    _require_own(actor, bot.company_id)
    with transaction.atomic():
        delete_in_database(bot)
    forget_bot_companies()
    logger.info("bot deleted id=%s company=%s", bot.pk, actor.company_id)


def _rule_errors(rule: BotRule) -> dict[str, list[str]]:
    errors = {}
    if not rule.trigger:
        errors["trigger"] = ["Enter a keyword or a regular expression."]
    elif rule.match_type == BotRule.MatchType.REGEX and (error := regex_error(rule.trigger)):
        errors["trigger"] = [error]
    errors.update(_text_errors(rule.reply_text, "reply_text", required=True))
    return errors


def create_rule(actor, bot: Bot, **fields) -> BotRule:
    """A rule at the end of the bot's list."""
    _require_own(actor, bot.company_id)
    rule = BotRule(bot=bot)
    _apply(rule, fields, RULE_FIELDS)
    with transaction.atomic():
        Bot.objects.select_for_update().filter(pk=bot.pk).first()  # one append at a time
        last = bot.rules.aggregate(last=Max("position"))["last"]
        rule.position = 0 if last is None else last + 1
        _save(rule, _rule_errors(rule))
    logger.info("bot rule created id=%s bot=%s company=%s", rule.pk, bot.pk, actor.company_id)
    return rule


def update_rule(actor, rule: BotRule, **fields) -> BotRule:
    _require_own(actor, rule.bot.company_id)
    _apply(rule, fields, RULE_FIELDS)
    _save(rule, _rule_errors(rule))
    logger.info("bot rule updated id=%s bot=%s", rule.pk, rule.bot_id)
    return rule


def delete_rule(actor, rule: BotRule) -> None:
    _require_own(actor, rule.bot.company_id)
    BotRule.objects.filter(pk=rule.pk).delete()
    logger.info("bot rule deleted id=%s bot=%s", rule.pk, rule.bot_id)


def _set_positions(rules: list[BotRule]) -> None:
    for index, rule in enumerate(rules):
        rule.position = index
    BotRule.objects.bulk_update(rules, ["position"])


def reorder_rules(actor, bot: Bot, rule_ids: list[int]) -> list[BotRule]:
    """Positions 0..n-1 in the order given; `rule_ids` must be exactly the bot's rules."""
    _require_own(actor, bot.company_id)
    with transaction.atomic():
        Bot.objects.select_for_update().filter(pk=bot.pk).first()
        rules = {rule.pk: rule for rule in bot.rules.all()}
        if len(rule_ids) != len(set(rule_ids)) or set(rule_ids) != set(rules):
            raise ValidationError(
                {"order": [_("List every rule of this bot exactly once (by id).")]}
            )
        ordered = [rules[rule_id] for rule_id in rule_ids]
        _set_positions(ordered)
    logger.info("bot rules reordered bot=%s", bot.pk)
    return ordered


def move_rule(actor, rule: BotRule, offset: int) -> BotRule:
    """Move a rule up (-1) or down (+1) one place; at either end it stays."""
    _require_own(actor, rule.bot.company_id)
    with transaction.atomic():
        Bot.objects.select_for_update().filter(pk=rule.bot_id).first()
        rules = list(BotRule.objects.filter(bot_id=rule.bot_id).order_by("position", "id"))
        index = next((i for i, found in enumerate(rules) if found.pk == rule.pk), None)
        if index is None:  # deleted meanwhile
            return rule
        target = index + offset
        if 0 <= target < len(rules):
            rules[index], rules[target] = rules[target], rules[index]
        _set_positions(rules)
        rule.position = next(candidate.position for candidate in rules if candidate.pk == rule.pk)
    return rule


# ---------------------------------------------------------------- matching


@lru_cache(maxsize=1024)
def _compiled(match_type: str, trigger: str):
    if match_type == BotRule.MatchType.KEYWORD:
        words = trigger.split()
        if not words:
            return None
        phrase = r"\s+".join(regex.escape(word) for word in words)
        return regex.compile(rf"(?<!\w){phrase}(?!\w)", regex.IGNORECASE)
    try:
        return regex.compile(trigger, regex.IGNORECASE)
    except regex.error:
        return None  # saved before validation existed: never matches


def rule_matches(rule: BotRule, text: str) -> bool:
    """Whether the rule's pattern is found in `text`; a search that runs past
    BOT_REGEX_TIMEOUT_SECONDS (a pattern saved before the check on save) counts as no match."""
    pattern = _compiled(rule.match_type, rule.trigger)
    if pattern is None:
        return False
    try:
        found = pattern.search(text[:MATCH_TEXT_LIMIT], timeout=settings.BOT_REGEX_TIMEOUT_SECONDS)
    except TimeoutError:
        logger.warning("bots: rule=%s pattern ran out of time; no match", rule.pk)
        return False
    return found is not None


def first_matching_rule(rules, text: str) -> BotRule | None:
    """The first active rule, by position, that matches `text`."""
    ordered = sorted((rule for rule in rules if rule.is_active), key=lambda r: (r.position, r.pk))
    return next((rule for rule in ordered if rule_matches(rule, text)), None)


# ---------------------------------------------------------------- the engine

AUTOMATED_PRECEDENCE = {"bulk", "list", "junk", "auto_reply"}


def is_automated(metadata: dict | None) -> bool:
    """An auto-reply or bulk message (as the channel flagged it): bots never answer those."""
    metadata = metadata or {}
    auto_submitted = metadata.get("auto_submitted")
    if auto_submitted and str(auto_submitted).strip().lower() != "no":  # RFC 3834
        return True
    if metadata.get("bulk") or metadata.get("auto_reply"):
        return True
    return str(metadata.get("precedence", "")).strip().lower() in AUTOMATED_PRECEDENCE


def _skip_reason(message) -> str | None:

    conversation = message.conversation
    if message.direction != Message.Direction.INBOUND:
        return "not inbound"
    if conversation.platform not in BOT_PLATFORMS:
        return "no bots on this channel"
    source = conversation.source
    if (
        source is None
        or not source.is_active
        or getattr(source, "status", None) == WhatsAppNumber.Status.DELETING
    ):
        return "source inactive"
    if is_automated(message.metadata):
        return "automated message"
    return None


def _reply_limit() -> tuple[int, int]:
    return tuple(settings.BOT_REPLY_LIMIT)


def _answer_as(bot: Bot, inbound):
    """At most one reply of `bot` to `inbound`; the reply message, or None."""

    conversation = inbound.conversation
    with transaction.atomic():
        # Runs of this task for the same message wait here for each other, so the check
        # below sees a reply committed by the other run.
        Message.objects.select_for_update().filter(pk=inbound.pk).first()
        replies = Message.objects.filter(
            conversation_id=conversation.pk, bot=bot, direction=Message.Direction.OUTBOUND
        )
        if replies.filter(metadata__in_reply_to=inbound.pk).exists():
            logger.info("bot=%s already answered message=%s", bot.pk, inbound.pk)
            return None
        rule = first_matching_rule(bot.rules.all(), inbound.body)
        if rule is not None:
            body, metadata = rule.reply_text, {"in_reply_to": inbound.pk, "bot_rule": rule.pk}
        elif bot.greeting and not _has_earlier_inbound(inbound):
            body, metadata = bot.greeting, {"in_reply_to": inbound.pk, "bot_greeting": True}
        else:
            return None
        limit, seconds = _reply_limit()
        since = timezone.now() - timedelta(seconds=seconds)
        if replies.filter(created_at__gte=since).count() >= limit:
            logger.warning(
                "bot=%s reply limit reached in conversation=%s; not answering message=%s",
                bot.pk,
                conversation.pk,
                inbound.pk,
            )
            return None
        reply = send_message(conversation, None, body, bot=bot)
        reply.metadata = {**reply.metadata, **metadata}
        reply.save(update_fields=["metadata"])
    logger.info(
        "bot=%s answered message=%s with message=%s (%s)",
        bot.pk,
        inbound.pk,
        reply.pk,
        f"rule {metadata['bot_rule']}" if "bot_rule" in metadata else "greeting",
    )
    return reply


def _has_earlier_inbound(inbound) -> bool:

    return Message.objects.filter(
        conversation_id=inbound.conversation_id,
        direction=Message.Direction.INBOUND,
        pk__lt=inbound.pk,
    ).exists()


def answer_inbound(message_id: int) -> list:
    """Let every active bot of the message's number answer it (see the module docstring).
    Safe to run any number of times for the same message."""

    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        logger.info("bots: message=%s is gone; nothing to answer", message_id)
        return []
    reason = _skip_reason(message)
    if reason:
        logger.info("bots: not answering message=%s (%s)", message_id, reason)
        return []
    field = BOT_PLATFORMS[message.conversation.platform]
    bots = Bot.objects.filter(**{f"{field}_id": message.conversation.source_id}, is_active=True)
    bots = bots.order_by("pk").prefetch_related(
        Prefetch("rules", queryset=BotRule.objects.filter(is_active=True))
    )
    replies = []
    for bot in bots:
        try:
            reply = _answer_as(bot, message)
        except ValidationError as exc:  # e.g. the number was deactivated meanwhile
            logger.warning("bot=%s cannot answer message=%s: %s", bot.pk, message_id, exc)
            continue
        if reply is not None:
            replies.append(reply)
    return replies


# Which companies have an active bot on an active source, as this process last read it. The
# receiver asks this for every inbound message of BOT_PLATFORMS, so a company without bots costs
# nothing (no query, no task). Writes of bots and numbers clear it in this process (signals in
# channels_integrations.whatsapp.bot_receivers); other processes re-read it after BOT_COMPANIES_CACHE_SECONDS.
_bot_companies: dict = {"read_at": None, "ids": frozenset()}


def forget_bot_companies() -> None:
    _bot_companies["read_at"] = None


def company_has_active_bots(company_id: int) -> bool:
    ttl = settings.BOT_COMPANIES_CACHE_SECONDS
    read_at, now = _bot_companies["read_at"], time.monotonic()
    if read_at is None or now - read_at > ttl:
        active = Q(number__is_active=True) | Q(sandbox__is_active=True)
        ids = Bot.objects.filter(active, is_active=True).values_list("company_id", flat=True)
        _bot_companies.update(read_at=now, ids=frozenset(ids.distinct()))
    return company_id in _bot_companies["ids"]
