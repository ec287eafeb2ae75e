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
