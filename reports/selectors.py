"""The Reports page's figures, each ONE SQL aggregate over the company's rows in a period
(half-open [start, end) in the current time zone), whatever the amount of data.

percentile_cont gives the median and p90 in PostgreSQL; nothing is computed row by row in
Python."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class Period:
    start: date  # first day, included
    end: date  # last day, included

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, tzinfo=zone),
            datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=zone),
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


MAX_DAYS = 731


def parse_period(params, today: date | None = None) -> tuple[Period, dict]:
    """`from` and `to` (YYYY-MM-DD, both included) from a query string; the last 30 days by
    default. Errors name the field."""
    today = today or timezone.localdate()
    errors: dict[str, list[str]] = {}
    values = {}
    for name, default in (("from", today - timedelta(days=29)), ("to", today)):
        raw = (params.get(name) or "").strip()
        if not raw:
            values[name] = default
            continue
        try:
            values[name] = date.fromisoformat(raw)
        except ValueError:
            errors[name] = [_("Enter a date as YYYY-MM-DD.")]
            values[name] = default
    if not errors and values["from"] > values["to"]:
        errors["from"] = [_("The period starts after it ends.")]
    elif not errors and (values["to"] - values["from"]).days >= MAX_DAYS:
        errors["to"] = [_("A period is at most %(days)d days.") % {"days": MAX_DAYS}]
    if errors:
        values = {"from": today - timedelta(days=29), "to": today}
    return Period(values["from"], values["to"]), errors


def _rows(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _params(company_id: int, period: Period, **extra) -> dict:
    start, end = period.bounds
    return {
        "company": company_id,
        "start": start,
        "end": end,
        "tz": timezone.get_current_timezone_name(),
        **extra,
    }


def _seconds(value) -> float | None:
    return None if value is None else round(float(value), 1)


RESPONSE_TIMES_SQL = """
SELECT count(*),
       count(*) FILTER (WHERE first_response_at IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at))
           FILTER (WHERE first_response_at IS NOT NULL),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM first_response_at - created_at))
           FILTER (WHERE first_response_at IS NOT NULL),
       count(*) FILTER (WHERE status = 'closed' AND closed_at IS NOT NULL),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))
           FILTER (WHERE status = 'closed' AND closed_at IS NOT NULL),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM closed_at - created_at))
           FILTER (WHERE status = 'closed' AND closed_at IS NOT NULL)
  FROM messaging_conversation
 WHERE company_id = %(company)s AND created_at >= %(start)s AND created_at < %(end)s
"""


def response_times(company_id: int, period: Period) -> dict:
    """First response (the conversation's start, i.e. the client's first message, to the
    first reply an agent wrote after it: Conversation.first_response_at; bots and unanswered
    conversations left out) and resolution (start to close, closed conversations), median
    and p90 in seconds, of conversations started in the period."""
    [row] = _rows(RESPONSE_TIMES_SQL, _params(company_id, period))
    total, answered, frt50, frt90, resolved, res50, res90 = row
    return {
        "conversations": total,
        "answered": answered,
        "first_response_median": _seconds(frt50),
        "first_response_p90": _seconds(frt90),
        "resolved": resolved,
        "resolution_median": _seconds(res50),
        "resolution_p90": _seconds(res90),
    }


BY_CHANNEL_SQL = """
SELECT c.platform, count(*)
  FROM messaging_conversation c
 WHERE c.company_id = %(company)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
 GROUP BY c.platform
 ORDER BY count(*) DESC, c.platform
"""


def conversations_by_channel(company_id: int, period: Period) -> list[dict]:
    from messaging import channels

    labels = dict(channels.platform_choices())
    return [
        {"platform": platform, "label": str(labels.get(platform, platform)), "conversations": n}
        for platform, n in _rows(BY_CHANNEL_SQL, _params(company_id, period))
    ]


BY_AGENT_SQL = """
SELECT c.assignee_id,
       COALESCE(NULLIF(trim(u.first_name || ' ' || u.last_name), ''), u.username),
       count(*),
       count(*) FILTER (WHERE c.first_response_at IS NOT NULL),
       count(*) FILTER (WHERE c.status = 'closed')
  FROM messaging_conversation c
  LEFT JOIN accounts_user u ON u.id = c.assignee_id
 WHERE c.company_id = %(company)s AND c.created_at >= %(start)s AND c.created_at < %(end)s
 GROUP BY c.assignee_id, u.first_name, u.last_name, u.username
 ORDER BY 3 DESC, 2
"""


def conversations_by_agent(company_id: int, period: Period) -> list[dict]:
    """Per assignee, the conversations started in the period: how many, how many were
    answered by an agent, how many are closed. Unassigned ones are one row without an agent."""
    return [
        {
            "agent_id": agent,
            "agent": name or "",
            "conversations": conversations,
            "answered": answered,
            "closed": closed,
        }
        for agent, name, conversations, answered, closed in _rows(
            BY_AGENT_SQL, _params(company_id, period)
        )
    ]


# Finished days of the period that have no stored counts yet are counted in one pass over
# their messages (one statement, whatever their number) and stored; ON CONFLICT: a concurrent
# report stored them first.
FILL_DAYS_SQL = """
WITH missing AS (
    SELECT d::date AS day
      FROM generate_series(%(first)s::date, %(last_finished)s::date, interval '1 day') AS d
     WHERE NOT EXISTS (SELECT 1 FROM reports_messageday r
                        WHERE r.company_id = %(company)s AND r.tz = %(tz)s AND r.day = d::date)
), bounds AS (
    SELECT (min(day)::timestamp AT TIME ZONE %(tz)s) AS lo,
           ((max(day) + 1)::timestamp AT TIME ZONE %(tz)s) AS hi
      FROM missing
), counts AS (
    SELECT (m.created_at AT TIME ZONE %(tz)s)::date AS day,
           count(*) FILTER (WHERE m.direction = 'in') AS inbound,
           count(*) FILTER (WHERE m.direction = 'out') AS outbound
      FROM bounds, messaging_message m
      JOIN messaging_conversation c ON c.id = m.conversation_id
     WHERE c.company_id = %(company)s AND m.created_at >= bounds.lo AND m.created_at < bounds.hi
     GROUP BY 1
)
INSERT INTO reports_messageday (company_id, tz, day, inbound, outbound)
SELECT %(company)s, %(tz)s, missing.day, COALESCE(counts.inbound, 0), COALESCE(counts.outbound, 0)
  FROM missing LEFT JOIN counts ON counts.day = missing.day
ON CONFLICT DO NOTHING
"""

MESSAGES_PER_DAY_SQL = """
SELECT d::date AS day,
       COALESCE(r.inbound, live.inbound, 0), COALESCE(r.outbound, live.outbound, 0)
  FROM generate_series(%(first)s::date, %(last)s::date, interval '1 day') AS d
  LEFT JOIN reports_messageday r
         ON r.company_id = %(company)s AND r.tz = %(tz)s AND r.day = d::date
  LEFT JOIN (
      SELECT (m.created_at AT TIME ZONE %(tz)s)::date AS day,
             count(*) FILTER (WHERE m.direction = 'in') AS inbound,
             count(*) FILTER (WHERE m.direction = 'out') AS outbound
        FROM messaging_message m
        JOIN messaging_conversation c ON c.id = m.conversation_id
       WHERE c.company_id = %(company)s AND m.created_at >= %(today_start)s
         AND m.created_at < %(end)s
       GROUP BY 1
  ) live ON live.day = d::date
 ORDER BY 1
"""


def messages_per_day(company_id: int, period: Period, today: date | None = None) -> list[dict]:
    """Inbound and outbound messages per day of the period. Finished days are counted once
    and kept (reports.MessageDay); today, and only today, is counted live. Two statements."""
    today = today or timezone.localdate()
    zone = timezone.get_current_timezone()
    today_start = datetime.combine(today, time.min, tzinfo=zone)
    params = _params(
        company_id,
        period,
        first=period.start,
        last=period.end,
        last_finished=min(period.end, today - timedelta(days=1)),
        today_start=max(today_start, period.bounds[0]),
    )
    if period.start < today:
        with connection.cursor() as cursor:
            cursor.execute(FILL_DAYS_SQL, params)
    return [
        {"day": day.isoformat(), "inbound": inbound, "outbound": outbound}
        for day, inbound, outbound in _rows(MESSAGES_PER_DAY_SQL, params)
    ]


FUNNEL_SQL = """
WITH stages AS (
    SELECT s.id, s.name, s.position,
           row_number() OVER (ORDER BY s.position, s.id) AS ord
      FROM deals_stage s WHERE s.pipeline_id = %(pipeline)s
), reached AS (
    SELECT d.id, d.status, max(st.ord) AS furthest
      FROM deals_deal d
      JOIN deals_stagechange h ON h.deal_id = d.id
      JOIN stages st ON st.id = h.to_stage_id
     WHERE d.company_id = %(company)s AND d.pipeline_id = %(pipeline)s
       AND d.created_at >= %(start)s AND d.created_at < %(end)s
     GROUP BY d.id, d.status
)
SELECT st.id, st.name, count(r.id), count(r.id) FILTER (WHERE r.status = 'won')
  FROM stages st LEFT JOIN reached r ON r.furthest >= st.ord
 GROUP BY st.id, st.name, st.ord
 ORDER BY st.ord
"""


def deal_funnel(company_id: int, period: Period, pipeline_id: int | None) -> list[dict]:
    """Per stage of the pipeline, in order: deals created in the period that reached it (their
    history's furthest stage is this one or later), and how many of those were won."""
    if pipeline_id is None:
        return []
    return [
        {"stage_id": stage_id, "stage": name, "deals": reached, "won": won}
        for stage_id, name, reached, won in _rows(
            FUNNEL_SQL, _params(company_id, period, pipeline=pipeline_id)
        )
    ]


WON_SQL = """
SELECT date_trunc(%(unit)s, d.closed_at AT TIME ZONE %(tz)s)::date AS bucket, d.currency,
       count(*), sum(d.amount)
  FROM deals_deal d
 WHERE d.company_id = %(company)s AND d.status = 'won'
   AND d.closed_at >= %(start)s AND d.closed_at < %(end)s
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


def won_amounts(company_id: int, period: Period, unit: str | None = None) -> list[dict]:
    """Won deals closed in the period, per week (periods up to 92 days) or month, per currency
    (amounts in different currencies are never added)."""
    unit = unit or ("week" if period.days <= 92 else "month")
    return [
        {"period": bucket.isoformat(), "currency": currency, "deals": n, "amount": Decimal(total)}
        for bucket, currency, n, total in _rows(WON_SQL, _params(company_id, period, unit=unit))
    ]
