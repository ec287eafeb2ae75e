"""Saved views' live counts on a big company: the time of the sidebar's one aggregate query
(`triage.selectors.views_with_counts`: COUNT(*) FILTER (WHERE ...) per view) with 20 views, and
of the snooze wake-up task over many due conversations.

    .venv/bin/python bench/saved_views.py [--quick]

Data: one company with 100,000 conversations (--quick: 10,000) and few messages each, 8
labels on ~30% of them, 20 views mixing status, label, assignee, channel and unread filters.
Figures: saved_view_counts_p50_ms, saved_view_counts_p95_ms (20 views, one query),
saved_view_queries (queries per sidebar), snooze_wake_per_s (conversations woken per second).
"""

import time
from datetime import timedelta

import _common as common
import inbox_api

DB_NAME = "switchboard_bench_views"
REDIS_DB = 12
CHANNEL = "switchboard:events:bench:views"
VIEWS = 20
LABELS = 8
RUNS = 50


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    conversations = 10_000 if args.quick else 100_000
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from messaging.models import Conversation
    from messaging.services.states import wake_due_conversations
    from triage.models import Label, SavedView
    from triage.selectors import views_with_counts

    common.truncate_tenants()
    common.flush_redis(env["REDIS_URL"])
    company, users, sources = inbox_api.make_company("views", agents=5)
    inbox_api.fill(company, users, sources, conversations, 2)
    labels = [
        Label.objects.create(company=company, name=f"Label {n}", color="blue")
        for n in range(LABELS)
    ]
    with connection.cursor() as cursor:
        # ~30% of conversations carry one label; statuses spread over the four states.
        cursor.execute(
            """INSERT INTO triage_conversationlabel (conversation_id, label_id, created_at)
               SELECT c.id, (%s::bigint[])[1 + (c.id %% %s)], now()
               FROM messaging_conversation c WHERE c.company_id = %s AND c.id %% 10 < 3""",
            [[label.pk for label in labels], LABELS, company.pk],
        )
        cursor.execute(
            """UPDATE messaging_conversation SET status = CASE id %% 4 WHEN 0 THEN 'open'
               WHEN 1 THEN 'pending' WHEN 2 THEN 'closed' ELSE 'open' END
               WHERE company_id = %s""",
            [company.pk],
        )
    user = users[0]
    statuses = ["open", "pending", "closed", "all"]
    for n in range(VIEWS):
        filters = {"status": statuses[n % 4]}
        if n % 3 == 0:
            filters["label"] = labels[n % LABELS].pk
        if n % 5 == 1:
            filters["assigned"] = "mine"
        if n % 7 == 2:
            filters["platform"] = "telegram"
        if n % 4 == 3:
            filters["unread"] = True
        SavedView.objects.create(
            company=company, owner=user, name=f"View {n}", shared=n % 2 == 0, filters=filters
        )
    inbox_api.vacuum_analyze(env["DATABASE_URL"])
    common.note(f"{conversations} conversations, {VIEWS} views")

    views_with_counts(user)  # warm up
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        views_with_counts(user)
        timings.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        views_with_counts(user)
    common.emit("saved_view_counts_p50_ms", common.percentile(timings, 50))
    common.emit("saved_view_counts_p95_ms", common.percentile(timings, 95))
    common.emit("saved_view_queries", len(queries))

    due = conversations // 10
    past = timezone.now() - timedelta(minutes=1)
    ids = list(
        Conversation.objects.filter(company=company, status="open").values_list("pk", flat=True)[
            :due
        ]
    )
    Conversation.objects.filter(pk__in=ids).update(status="snoozed", snoozed_until=past)
    started = time.perf_counter()
    woken = wake_due_conversations()
    elapsed = time.perf_counter() - started
    common.emit("snooze_woken", woken)
    common.emit("snooze_wake_per_s", woken / elapsed)


if __name__ == "__main__":
    main()
