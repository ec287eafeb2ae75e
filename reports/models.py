from django.contrib.postgres.fields import ArrayField
from django.db import models


class MessageDay(models.Model):
    """A company's message counts of one finished day (in one time zone), computed once by the
    messages-per-day report when first asked for: messages are stamped when stored, so a day
    that has ended never gains any. Today is always counted live."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    tz = models.CharField(max_length=64)
    day = models.DateField()
    inbound = models.PositiveIntegerField(default=0)
    outbound = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "tz", "day"], name="messageday_unique")
        ]

    def __str__(self):
        return f"{self.company_id} {self.day}"


class ConversationDay(models.Model):
    """The conversation reports' figures of one finished day (in one time zone): conversations
    started that day, their first-response and resolution durations (seconds, sorted, so
    medians and p90 stay exact: percentile_cont over the stored values), and counts by channel
    and by assignee. Computed when a report first asks for the day; today is counted live.

    Unlike messages, a conversation changes after its day: a late first reply, a close or a
    reopen, another assignee. A trigger on messaging_conversation (migration 0002) deletes the
    stored day of any conversation whose reported fields change (and of conversations added or
    deleted), so the next report counts that day again; an advisory lock per company orders
    that delete after a concurrent fill (reports.selectors.fill_conversation_days)."""

    company = models.ForeignKey("accounts.Company", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    tz = models.CharField(max_length=64)
    conversations = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    first_responses = ArrayField(models.FloatField(), default=list)
    resolutions = ArrayField(models.FloatField(), default=list)
    platforms = models.JSONField(default=dict)  # {platform: conversations}
    # {"<assignee id>" ("" for nobody): [conversations, answered, closed]}
    agents = models.JSONField(default=dict)

    class Meta:
        constraints = [
            # day before tz: the trigger deletes by company and a range of days.
            models.UniqueConstraint(fields=["company", "day", "tz"], name="conversationday_unique")
        ]

    def __str__(self):
        return f"{self.company_id} {self.day}"
