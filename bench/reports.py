"""The Reports page's SQL on a year of data: every report's p95 and its query count.

    .venv/bin/python bench/reports.py [--quick]

Data (INSERT ... SELECT generate_series, not the ORM) for one company over the last 365 days:
    default  100,000 conversations, 1,000,000 messages, 20,000 deals (~60,000 history steps)
    --quick   10,000 conversations,   100,000 messages,  2,000 deals
on three channels, five agents; messages alternate client/agent (every fifth conversation's
first answer is a bot's), 30 % of conversations closed, deals won/lost/open with 1-5 steps of
stage history. A second company with a tenth of the data must not change the figures.

Figures, each the p95 of --runs calls (default 20) after one warm-up, in ms:
    <report>_30d_p95_ms   the default period (last 30 days)
    <report>_365d_p95_ms  the whole year
    page_30d_p95_ms, page_365d_p95_ms  the whole Reports page (every report, rendered)
    <report>_queries      statements per call (must not grow with the data: constant)
    messages_per_day_365d_first_call_ms  the very first call over the year (stores the
                          finished days' counts; not part of the p95 figures)
    conversation_days_365d_first_call_ms  the same for the conversation reports' stored days
                          (reports.ConversationDay: durations, channels, agents per day)
    page_queries          statements per page
Goal: every p95 < 500 ms.
"""

import os
import time
from datetime import timedelta

import _common as common

# BENCH_REPORTS_DB: another database, so that two people can run it on one machine.
DB_NAME = os.environ.get("BENCH_REPORTS_DB", "switchboard_bench_reports")
REDIS_DB = 11
CHANNEL = "switchboard:events:bench:reports"
SIZES = {"quick": (10_000, 2_000), "default": (100_000, 20_000)}
MESSAGES_PER_CONVERSATION = 10
AGENTS = 5


def _execute(statements, params):
    from django.db import connection

    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)


def make_company(name: str, conversations: int, deals: int):
    from accounts.models import Company, User
    from deals.services import default_pipeline

    company = Company.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    agents = [
        User.objects.create(
            username=f"{company.slug}-agent{i}", company=company, first_name=f"Agent {i}"
        )
        for i in range(AGENTS)
    ]
    pipeline = default_pipeline(company)
    params = {
        "company": company.pk,
        "conversations": conversations,
        "deals": deals,
        "per": MESSAGES_PER_CONVERSATION,
        "agent0": agents[0].pk,
        "agents": AGENTS,
        "pipeline": pipeline.pk,
    }
    statements = [
        # Clients, one per conversation.
        """
        INSERT INTO crm_client (company_id, name, phone, email, telegram_username, notes,
                                created_at, updated_at)
        SELECT %(company)s, 'Client ' || g, '+49' || (%(company)s * 100000000 + g)::text, '', '',
               '', now() - interval '365 days', now()
          FROM generate_series(1, %(conversations)s) g
        """,
        # Conversations spread evenly over the year, on three channels; 30 %% closed.
        """
        INSERT INTO messaging_conversation (company_id, platform, external_thread_id, source_id,
            client_id, assignee_id, subject, status, last_message_at, last_message_preview,
            unread_count, created_at, updated_at, closed_at)
        SELECT %(company)s,
               (ARRAY['whatsapp', 'telegram', 'email'])[1 + (c.n %% 3)],
               'thread-' || c.n, %(company)s, c.id,
               CASE WHEN c.n %% 7 = 0 THEN NULL ELSE %(agent0)s + (c.n %% %(agents)s) END,
               '', CASE WHEN c.n %% 10 < 3 THEN 'closed' ELSE 'open' END,
               c.at + interval '70 min', 'Last words', 0, c.at, c.at,
               CASE WHEN c.n %% 10 < 3 THEN c.at + make_interval(mins => (30 + (c.n %% 600))::int) END
          FROM (SELECT id, row_number() OVER (ORDER BY id) AS n,
                       now() - make_interval(secs => (row_number() OVER (ORDER BY id))
                                             * 365 * 86400.0 / %(conversations)s) AS at
                  FROM crm_client WHERE company_id = %(company)s) c
        """,
        # Ten messages each: odd ones from the client, even ones from an agent (or a bot).
        """
        INSERT INTO messaging_message (conversation_id, direction, external_id, sender_name,
            sender_address, author_id, body, status, error, metadata, created_at)
        SELECT conv.id,
               CASE WHEN g %% 2 = 1 THEN 'in' ELSE 'out' END,
               'm.' || conv.id || '.' || g, '', conv.external_thread_id,
               CASE WHEN g %% 2 = 0 AND NOT (g = 2 AND conv.id %% 5 = 0)
                    THEN %(agent0)s + (conv.id %% %(agents)s) END,
               'Message ' || g, CASE WHEN g %% 2 = 1 THEN 'received' ELSE 'sent' END, '',
               '{}'::jsonb,
               conv.created_at + make_interval(mins => (g * 7 + (conv.id %% 13))::int)
          FROM messaging_conversation conv
         CROSS JOIN generate_series(1, %(per)s) g
         WHERE conv.company_id = %(company)s
         -- stored in time order, as live messages are (the BRIN index on created_at
         -- relies on it)
         ORDER BY conv.created_at + make_interval(mins => (g * 7 + (conv.id %% 13))::int)
        """,
        # The first response of each conversation, as send_message records it (and as the
        # migration backfilled it): the first agent-written reply after the client wrote.
        """
        UPDATE messaging_conversation c
           SET first_response_at = (
               SELECT min(o.created_at) FROM messaging_message o
                WHERE o.conversation_id = c.id AND o.direction = 'out'
                  AND o.author_id IS NOT NULL)
         WHERE c.company_id = %(company)s
        """,
        # Deals over the year: 30 %% won, 20 %% lost, the rest open.
        """
        INSERT INTO deals_deal (company_id, pipeline_id, stage_id, title, amount, currency,
            client_id, status, lost_reason, auto_created, created_at, updated_at, closed_at)
        SELECT %(company)s, %(pipeline)s,
               (SELECT id FROM deals_stage WHERE pipeline_id = %(pipeline)s
                 ORDER BY position OFFSET (d.n %% 4) LIMIT 1),
               'Deal ' || d.n, (d.n %% 97) * 10 + 0.5,
               CASE WHEN d.n %% 5 = 0 THEN 'USD' ELSE 'EUR' END, d.client,
               CASE WHEN d.n %% 10 < 3 THEN 'won' WHEN d.n %% 10 < 5 THEN 'lost' ELSE 'open' END,
               CASE WHEN d.n %% 10 BETWEEN 3 AND 4 THEN 'Too expensive' ELSE '' END,
               false, d.at, d.at,
               CASE WHEN d.n %% 10 < 5 THEN d.at + make_interval(days => (d.n %% 20)::int) END
          FROM (SELECT g AS n, first.id + (g %% %(conversations)s) AS client,
                       now() - make_interval(secs => g * 365 * 86400.0 / %(deals)s) AS at
                  FROM generate_series(1, %(deals)s) g,
                       (SELECT min(id) AS id FROM crm_client
                         WHERE company_id = %(company)s) first) d
        """,
        # History: created in the first stage, then one step per stage up to the current one.
        """
        INSERT INTO deals_stagechange (deal_id, from_stage_id, to_stage_id, from_name, to_name,
            from_status, to_status, reason, created_at)
        SELECT d.id, prev.id, s.id, COALESCE(prev.name, ''), s.name,
               CASE WHEN prev.id IS NULL THEN '' ELSE 'open' END, 'open', '',
               d.created_at + make_interval(hours => s.position::int)
          FROM deals_deal d
          JOIN deals_stage cur ON cur.id = d.stage_id
          JOIN deals_stage s ON s.pipeline_id = d.pipeline_id AND s.position <= cur.position
          LEFT JOIN deals_stage prev ON prev.pipeline_id = d.pipeline_id
                                    AND prev.position = s.position - 1
         WHERE d.company_id = %(company)s
        """,
    ]
    _execute(statements, params)
    return company, agents[0]


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "crm_client",
            "messaging_conversation",
            "messaging_message",
            "deals_deal",
            "deals_stagechange",
            "deals_stage",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


class Counter:
    """Counts the statements Django sends (DEBUG is off here, so no query log)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def timed(call, runs: int) -> tuple[float, int]:
    from django.db import connection

    call()  # warm-up: plans and caches
    samples = []
    counter = Counter()
    for _ in range(runs):
        counter.count = 0
        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
    return common.percentile(samples, 95), counter.count


def main() -> None:
    args = common.parse_args(
        "p95 and query count of every report on a year of data",
        runs={"type": int, "default": 20, "help": "calls per figure"},
        keep={"action": "store_true", "help": "leave the data in the bench database"},
    )
    common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    from django.test import Client as HttpClient
    from django.utils import timezone

    from reports import selectors
    from reports.views import REPORTS, compute

    conversations, deals = SIZES["quick" if args.quick else "default"]
    common.truncate_tenants()
    started = time.perf_counter()
    common.note(f"generating {conversations:,} conversations, {deals:,} deals")
    company, agent = make_company("Bench Reports", conversations, deals)
    make_company("Bench Other", conversations // 10, deals // 10)
    vacuum_analyze()
    common.note(f"generated in {time.perf_counter() - started:.1f}s")

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM messaging_message m JOIN messaging_conversation c"
            " ON c.id = m.conversation_id WHERE c.company_id = %s",
            [company.pk],
        )
        common.emit("messages", cursor.fetchone()[0])
    common.emit("conversations", conversations)
    common.emit("deals", deals)

    from deals.models import Pipeline

    pipeline = Pipeline.objects.get(company=company, is_default=True)
    today = timezone.localdate()
    periods = {
        "30d": selectors.Period(today - timedelta(days=29), today),
        "365d": selectors.Period(today - timedelta(days=364), today),
    }
    # The first messages-per-day report of a year counts every finished day once and stores
    # the counts (reports.MessageDay); every later call reads them and counts only today.
    started = time.perf_counter()
    selectors.messages_per_day(company.pk, periods["365d"])
    common.emit("messages_per_day_365d_first_call_ms", (time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    selectors.fill_conversation_days(company.pk, periods["365d"])
    common.emit("conversation_days_365d_first_call_ms", (time.perf_counter() - started) * 1000)
    worst = 0.0
    for label, period in periods.items():
        for name in REPORTS:
            p95, queries = timed(
                lambda name=name, period=period: compute(name, company.pk, period, pipeline),
                args.runs,
            )
            worst = max(worst, p95)
            key = name.replace("-", "_")
            common.emit(f"{key}_{label}_p95_ms", p95)
            if label == "30d":
                common.emit(f"{key}_queries", queries)

    http = HttpClient(SERVER_NAME="localhost")
    http.force_login(agent)
    for label, period in periods.items():
        query = {"from": period.start.isoformat(), "to": period.end.isoformat()}

        def page(query=query):
            response = http.get("/reports/", query)
            assert response.status_code == 200, response.status_code

        p95, queries = timed(page, args.runs)
        worst = max(worst, p95)
        common.emit(f"page_{label}_p95_ms", p95)
        if label == "30d":
            common.emit("page_queries", queries)
    common.emit("worst_p95_ms", worst)
    common.emit("goal_met", "yes" if worst < 500 else "no")
    if not args.keep:
        common.truncate_tenants()  # leave the bench database small


if __name__ == "__main__":
    main()
