"""Inbound messages per second through `ingest_inbound`, events on, one call per transaction
(like webhooks arriving one by one), against raw single-row `INSERT ... ON CONFLICT DO NOTHING`
commits measured in the same run on the same database.

    .venv/bin/python bench/ingest.py [--quick]

Figures: ingest_per_s, raw_insert_per_s, ratio_vs_raw_insert (goal >= 0.35), plus the events
handed to Redis publishing (two per message: message.created and conversation.updated; no
subscriber runs, it would compete for the two cores; events leave from the publisher thread,
so the figure includes their hand-over, and the run waits for them to leave before it ends).
Also the same messages into conversations each assigned to an agent (a second number of the
company), as most conversations of a working inbox are: each message then also tells its
assignee (a stored notification, its unread count, a notification.created event):
assigned_ingest_per_s, assigned_ms_per_message, assigned_vs_unassigned.
Raw, ingest and assigned ingest alternate in rounds so all see the same machine. The database is a live one:
another company's inbox (50,000 conversations, 250,000 messages; --quick 5,000 / 20,000) sits
around ours and the planner has statistics (ANALYZE after the warm-up). Logging at WARNING
(BENCH_LOG_LEVEL=INFO for production-like log lines on stderr).
"""

import random
import time

import _common as common
import inbox_api

DB_NAME = "switchboard_bench_ingest"
REDIS_DB = 14
CHANNEL = "switchboard:events:bench:ingest"
CLIENT_PHONES = 500
RAW_TABLE = "bench_raw_insert"
BACKDROP = {False: (50_000, 5), True: (5_000, 4)}  # other tenants: conversations, messages each


class PublishCounter:
    """Counts events handed to the publisher (messaging.realtime.publish_soon) and, at the end,
    waits until they have all gone out to Redis; no subscriber competes for the two cores."""

    def __init__(self):
        from messaging import realtime

        self.count = 0
        self.realtime, self.original = realtime, realtime.publish_soon

        def counting(groups, payload):
            self.original(groups, payload)
            self.count += 1

        realtime.publish_soon = counting

    def stop(self) -> int:
        self.realtime.publish_soon = self.original
        if not self.realtime.flush(30):
            raise SystemExit("events were still waiting to be published")
        return self.count


def make_sources():
    """Two numbers of one company: the first's conversations stay unassigned, the second's
    are each assigned to an agent (assign_all), as most are in a working inbox."""
    from accounts.models import Company
    from channels_integrations.models import WhatsAppNumber

    company = Company.objects.create(name="Bench Ingest", slug="bench-ingest")
    return [
        WhatsAppNumber.objects.create(
            company=company,
            phone=f"+491700000000{n}",
            display_name=f"Bench line {n}",
            status=WhatsAppNumber.Status.CONNECTED,
        )
        for n in (1, 2)
    ]


def assign_all(source, numbers: list[str]) -> None:
    """A conversation for every phone on `source`, each assigned to one of 10 agents: every
    message ingested there afterwards tells its assignee (a `new_message` notification)."""
    from accounts.models import Role, User
    from messaging.models import Conversation

    run_ingest(source, [(phone, "Hello") for phone in numbers], 0, prefix="assigned.setup")
    agents = [
        User.objects.create(username=f"bench-ingest-agent-{n}", company=source.company,
                            role=Role.AGENT)
        for n in range(10)
    ]  # fmt: skip
    conversations = Conversation.objects.filter(source_id=source.pk, platform="whatsapp")
    for n, conversation in enumerate(conversations.order_by("pk")):
        conversation.assignee = agents[n % len(agents)]
        conversation.save(update_fields=["assignee"])


def phones(count: int) -> list[str]:
    return [f"+4915110{index:06d}" for index in range(count)]


def run_ingest(source, calls: list[tuple[str, str]], start_index: int, prefix="bench") -> float:
    """Ingest one message per (phone, body); returns seconds taken."""
    from messaging.services.inbox import Sender, ingest_inbound

    started = time.perf_counter()
    for offset, (phone, body) in enumerate(calls):
        result = ingest_inbound(
            source,
            external_thread_id=phone.lstrip("+"),
            external_message_id=f"wamid.{prefix}.{start_index + offset}",
            sender=Sender(address=phone, name=f"Client {phone[-4:]}", phone=phone),
            body=body,
        )
        if not result.created:
            raise RuntimeError("a new external message id was taken for a duplicate")
    return time.perf_counter() - started


def run_raw(dsn: str, count: int, start_index: int) -> float:
    """Single-row INSERT ... ON CONFLICT DO NOTHING, autocommit: one commit per row."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for index in range(start_index, start_index + count):
            conn.execute(
                f"INSERT INTO {RAW_TABLE} (external_id, body) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                [f"wamid.raw.{index}", "Hello, is this still available?"],
            )
        return time.perf_counter() - started


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    total = 1_500 if args.quick else 10_000
    rounds = 4 if args.quick else 10  # raw and ingest alternate: machine drift hits both
    warmup = 200

    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    import psycopg
    from django.db import connection

    from messaging.models import Conversation, Message

    common.truncate_tenants()
    dsn = env["DATABASE_URL"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        conn.execute(
            f"CREATE TABLE {RAW_TABLE} (id bigserial PRIMARY KEY, "
            "external_id text NOT NULL UNIQUE, body text NOT NULL)"
        )
    common.flush_redis(env["REDIS_URL"])
    # A live database: other companies' inboxes around ours, so tables and statistics have a
    # realistic size (statistics of near-empty tables freeze seq-scan plans into the prepared
    # statement: measured 0.2-0.4 ms more per message).
    other, other_users, other_sources = inbox_api.make_company("bench-other", agents=3)
    inbox_api.fill(other, other_users, other_sources, *BACKDROP[args.quick])
    inbox_api.vacuum_analyze(dsn)
    source, assigned_source = make_sources()

    rng = random.Random(3)
    numbers = phones(CLIENT_PHONES)
    bodies = [
        "Hello, is this still available?",
        "What time do you open tomorrow?",
        "Thanks!",
        "Can I change my delivery address to the one I sent last week? " * 3,
    ]
    # A realistic spread: a few busy clients, many occasional ones (new and existing threads).
    weights = [1 / (rank + 1) ** 0.6 for rank in range(CLIENT_PHONES)]
    calls = [(p, rng.choice(bodies)) for p in rng.choices(numbers, weights, k=total + warmup)]

    counter = PublishCounter()
    events_seen = 0
    try:
        run_ingest(source, calls[:warmup], 0)
        run_raw(dsn, warmup, 0)
        assign_all(assigned_source, numbers)
        run_ingest(assigned_source, calls[:warmup], 0, prefix="assigned")
        threads_before = Conversation.objects.filter(source_id=source.pk).count()
        with connection.cursor() as cursor:  # as on a live database: the planner has statistics
            cursor.execute(
                f"ANALYZE crm_client, messaging_conversation, messaging_message, {RAW_TABLE}"
            )
        per_round = total // rounds
        ingest_seconds = raw_seconds = assigned_seconds = 0.0
        for number in range(rounds):
            start = warmup + number * per_round
            round_calls = calls[start : start + per_round]
            raw_seconds += run_raw(dsn, per_round, start)
            ingest_seconds += run_ingest(source, round_calls, start)
            assigned_seconds += run_ingest(assigned_source, round_calls, start, prefix="assigned")
        # Two events per message; an assigned one's also a notification.created.
        expected = 2 * (warmup + per_round * rounds) + 2 * len(numbers)
        expected += 3 * (warmup + per_round * rounds)
    finally:
        events_seen = counter.stop()

    measured = per_round * rounds
    ingest_rate = measured / ingest_seconds
    raw_rate = measured / raw_seconds
    conversations = Conversation.objects.filter(source_id=source.pk).count()
    messages = Message.objects.filter(conversation__source_id=source.pk).count()
    common.note(
        f"{messages} messages in {conversations} conversations from {CLIENT_PHONES} phones; "
        f"{events_seen} events seen"
    )
    common.emit("ingest_messages", measured)
    common.emit("ingest_per_s", ingest_rate)
    common.emit("ingest_ms_per_message", 1000 / ingest_rate)
    common.emit("raw_insert_per_s", raw_rate)
    common.emit("ratio_vs_raw_insert", ingest_rate / raw_rate)
    common.emit("new_conversations_share", (conversations - threads_before) / measured)
    # The same messages into conversations each assigned to an agent, who is told of each.
    assigned_rate = measured / assigned_seconds
    common.emit("assigned_ingest_per_s", assigned_rate)
    common.emit("assigned_ms_per_message", 1000 / assigned_rate)
    common.emit("assigned_vs_unassigned", assigned_rate / ingest_rate)
    common.emit("events_published", events_seen)
    common.emit("events_expected", expected)


if __name__ == "__main__":
    main()
