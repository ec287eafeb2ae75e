"""The Reports page's figures, each ONE SQL aggregate over the company's rows in a period
(half-open [start, end) in the current time zone), whatever the amount of data.

percentile_cont gives the median and p90 in PostgreSQL; nothing is computed row by row in
Python. Figures of finished days that cannot change are stored (messages per day), and so are
those that can (conversations: kept exact by a trigger that deletes a day when one of its
conversations changes; see reports.models.ConversationDay)."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
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


# The conversation reports read finished days from reports.ConversationDay (filled below) and
# count today live; the two parts are added in SQL, one statement per report.

# Finished days of the period without stored figures are computed in one pass over their
# conversations and stored. Runs after pg_advisory_xact_lock((LOCK_NAMESPACE << 32) + company) in the
# same transaction: a change to a conversation (the trigger of migration 0002, which takes the
# same lock shared) either committed before this statement's snapshot or deletes what it
# stores once it commits.
LOCK_NAMESPACE = 21058
FILL_CONVERSATION_DAYS_SQL = """
WITH missing AS (
    SELECT d::date AS day
      FROM generate_series(%(first)s::date, %(last_finished)s::date, interval '1 day') AS d
     WHERE NOT EXISTS (SELECT 1 FROM reports_conversationday r
                        WHERE r.company_id = %(company)s AND r.day = d::date AND r.tz = %(tz)s)
), bounds AS (
    SELECT (min(day)::timestamp AT TIME ZONE %(tz)s) AS lo,
           ((max(day) + 1)::timestamp AT TIME ZONE %(tz)s) AS hi
      FROM missing
), conv AS MATERIALIZED (
    SELECT (c.created_at AT TIME ZONE %(tz)s)::date AS day, c.platform, c.assignee_id,
           c.status = 'closed' AS closed,
           extract(epoch FROM c.first_response_at - c.created_at)::float8 AS frt,
           CASE WHEN c.status = 'closed' AND c.closed_at IS NOT NULL
                THEN extract(epoch FROM c.closed_at - c.created_at)::float8 END AS res
      FROM bounds, messaging_conversation c
     WHERE c.company_id = %(company)s AND c.created_at >= bounds.lo AND c.created_at < bounds.hi
), totals AS (
    SELECT day, count(*) AS n, count(frt) AS answered, count(res) AS resolved,
           array_agg(frt ORDER BY frt) FILTER (WHERE frt IS NOT NULL) AS frts,
           array_agg(res ORDER BY res) FILTER (WHERE res IS NOT NULL) AS ress
      FROM conv GROUP BY day
), platforms AS (
    SELECT day, jsonb_object_agg(platform, n) AS platforms
      FROM (SELECT day, platform, count(*) AS n FROM conv GROUP BY 1, 2) p
     GROUP BY day
), agents AS (
    SELECT day, jsonb_object_agg(agent, jsonb_build_array(n, answered, closed)) AS agents
      FROM (SELECT day, COALESCE(assignee_id::text, '') AS agent, count(*) AS n,
                   count(frt) AS answered, count(*) FILTER (WHERE closed) AS closed
              FROM conv GROUP BY 1, 2) a
     GROUP BY day
)
INSERT INTO reports_conversationday (company_id, day, tz, conversations, answered, resolved,
                                     first_responses, resolutions, platforms, agents)
SELECT %(company)s, m.day, %(tz)s, COALESCE(t.n, 0), COALESCE(t.answered, 0),
       COALESCE(t.resolved, 0), COALESCE(t.frts, '{}'), COALESCE(t.ress, '{}'),
       COALESCE(p.platforms, '{}'), COALESCE(a.agents, '{}')
  FROM missing m
  LEFT JOIN totals t USING (day)
  LEFT JOIN platforms p USING (day)
  LEFT JOIN agents a USING (day)
ON CONFLICT DO NOTHING
"""

# The stored finished days of the period, and today's conversations (live).
_CONVERSATION_PARTS = """
days AS (
    SELECT conversations, answered, resolved, first_responses, resolutions, platforms, agents
      FROM reports_conversationday
     WHERE company_id = %(company)s AND tz = %(tz)s
       AND day >= %(first)s AND day <= %(last_finished)s
), live AS (
    SELECT c.platform, c.assignee_id, c.status = 'closed' AS closed,
           extract(epoch FROM c.first_response_at - c.created_at)::float8 AS frt,
           CASE WHEN c.status = 'closed' AND c.closed_at IS NOT NULL
                THEN extract(epoch FROM c.closed_at - c.created_at)::float8 END AS res
      FROM messaging_conversation c
     WHERE c.company_id = %(company)s AND c.created_at >= %(live_start)s
       AND c.created_at < %(end)s
)"""

RESPONSE_TIMES_SQL = f"""
WITH {_CONVERSATION_PARTS}
SELECT (SELECT COALESCE(sum(conversations), 0) FROM days) + (SELECT count(*) FROM live),
       (SELECT COALESCE(sum(answered), 0) FROM days) + (SELECT count(frt) FROM live),
       (SELECT percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY v)
          FROM (SELECT unnest(first_responses) AS v FROM days
                UNION ALL SELECT frt FROM live WHERE frt IS NOT NULL) f),
       (SELECT COALESCE(sum(resolved), 0) FROM days) + (SELECT count(res) FROM live),
       (SELECT percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY v)
          FROM (SELECT unnest(resolutions) AS v FROM days
                UNION ALL SELECT res FROM live WHERE res IS NOT NULL) r)
"""  # noqa: S608 (constant text: no input goes into it)


def _conversation_params(company_id: int, period: Period, today: date | None) -> dict:
    today = today or timezone.localdate()
    today_start = datetime.combine(today, time.min, tzinfo=timezone.get_current_timezone())
    return _params(
        company_id,
        period,
        first=period.start,
        last_finished=min(period.end, today - timedelta(days=1)),
        live_start=max(today_start, period.bounds[0]),
    )


def fill_conversation_days(company_id: int, period: Period, today: date | None = None) -> None:
    """Store the figures of the period's finished days that are not stored yet (two
    statements, whatever the number of days; none when the period is today alone)."""
    today = today or timezone.localdate()
    if period.start >= today:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [(LOCK_NAMESPACE << 32) + company_id])
        cursor.execute(FILL_CONVERSATION_DAYS_SQL, _conversation_params(company_id, period, today))


def _pair(values) -> tuple:
    return (values[0], values[1]) if values else (None, None)


def response_times(company_id: int, period: Period, fill: bool = True) -> dict:
    """First response (the conversation's start, i.e. the client's first message, to the
    first reply an agent wrote after it: Conversation.first_response_at; bots and unanswered
    conversations left out) and resolution (start to close, closed conversations), median
    and p90 in seconds, of conversations started in the period (percentile_cont over every
    duration: the stored days keep them all, sorted)."""
    if fill:
        fill_conversation_days(company_id, period)
    [row] = _rows(RESPONSE_TIMES_SQL, _conversation_params(company_id, period, None))
    total, answered, frt, resolved, res = row
    (frt50, frt90), (res50, res90) = _pair(frt), _pair(res)
    return {
        "conversations": total,
        "answered": answered,
        "first_response_median": _seconds(frt50),
        "first_response_p90": _seconds(frt90),
        "resolved": resolved,
        "resolution_median": _seconds(res50),
        "resolution_p90": _seconds(res90),
    }


BY_CHANNEL_SQL = f"""
WITH {_CONVERSATION_PARTS}
SELECT platform, sum(n)::bigint
  FROM (SELECT key AS platform, value::bigint AS n FROM days, jsonb_each_text(days.platforms)
        UNION ALL
        SELECT platform, count(*) FROM live GROUP BY platform) per_day
 GROUP BY platform
 ORDER BY 2 DESC, platform
"""  # noqa: S608 (constant text: no input goes into it)


def conversations_by_channel(company_id: int, period: Period, fill: bool = True) -> list[dict]:
    from messaging import channels

    if fill:
        fill_conversation_days(company_id, period)
    labels = dict(channels.platform_choices())
    return [
        {"platform": platform, "label": str(labels.get(platform, platform)), "conversations": n}
        for platform, n in _rows(BY_CHANNEL_SQL, _conversation_params(company_id, period, None))
    ]


BY_AGENT_SQL = f"""
WITH {_CONVERSATION_PARTS}, per_agent AS (
    SELECT agent, sum(n)::bigint AS n, sum(answered)::bigint AS answered,
           sum(closed)::bigint AS closed
      FROM (SELECT NULLIF(key, '')::bigint AS agent, (value->>0)::bigint AS n,
                   (value->>1)::bigint AS answered, (value->>2)::bigint AS closed
              FROM days, jsonb_each(days.agents)
            UNION ALL
            SELECT assignee_id, count(*), count(frt), count(*) FILTER (WHERE closed)
              FROM live GROUP BY assignee_id) per_day
     GROUP BY agent
)
SELECT a.agent,
       COALESCE(NULLIF(trim(u.first_name || ' ' || u.last_name), ''), u.username),
       a.n, a.answered, a.closed
  FROM per_agent a
  LEFT JOIN accounts_user u ON u.id = a.agent
 ORDER BY 3 DESC, 2
"""  # noqa: S608 (constant text: no input goes into it)


def conversations_by_agent(company_id: int, period: Period, fill: bool = True) -> list[dict]:
    """Per assignee, the conversations started in the period: how many, how many were
    answered by an agent, how many are closed. Unassigned ones are one row without an agent."""
    if fill:
        fill_conversation_days(company_id, period)
    return [
        {
            "agent_id": agent,
            "agent": name or "",
            "conversations": conversations,
            "answered": answered,
            "closed": closed,
        }
        for agent, name, conversations, answered, closed in _rows(
            BY_AGENT_SQL, _conversation_params(company_id, period, None)
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
        -- Each live message finds its conversation by primary key (OFFSET 0 keeps
        -- the planner from hashing every conversation of the company instead).
        JOIN LATERAL (SELECT c.company_id FROM messaging_conversation c
                       WHERE c.id = m.conversation_id OFFSET 0) c ON true
       WHERE c.company_id = %(company)s AND m.created_at >= %(live_start)s
         AND m.created_at < %(end)s
       GROUP BY 1
  ) live ON live.day = d::date
 ORDER BY 1
"""


# A day's message counts are stored only once it has been over this long: a message stamped
# just before midnight may commit just after it, and another server's clock may run behind.
# Until then the day is counted live, like today.
SETTLE = timedelta(minutes=10)


def messages_per_day(company_id: int, period: Period, now: datetime | None = None) -> list[dict]:
    """Inbound and outbound messages per day of the period. Settled days (over for SETTLE) are
    counted once and kept (reports.MessageDay); the others (today, and yesterday in the first
    minutes after midnight) are counted live. Two statements."""
    now = timezone.localtime(now)
    zone = timezone.get_current_timezone()
    last_stored = min(period.end, (now - SETTLE).date() - timedelta(days=1))
    live_start = datetime.combine(last_stored + timedelta(days=1), time.min, tzinfo=zone)
    params = _params(
        company_id,
        period,
        first=period.start,
        last=period.end,
        last_finished=last_stored,
        live_start=max(live_start, period.bounds[0]),
    )
    if period.start <= last_stored:
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
), by_furthest AS (
    SELECT furthest, count(*) AS deals, count(*) FILTER (WHERE status = 'won') AS won
      FROM reached GROUP BY furthest
)
SELECT st.id, st.name, COALESCE(sum(b.deals), 0)::bigint, COALESCE(sum(b.won), 0)::bigint
  FROM stages st LEFT JOIN by_furthest b ON b.furthest >= st.ord
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
