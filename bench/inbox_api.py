"""Latency of the conversation list API, GET /api/v1/conversations/, on a big company, through
a real daphne on loopback with an API token, requests one after another.

    .venv/bin/python bench/inbox_api.py [--quick]

Data (made with INSERT ... SELECT generate_series, not the ORM): one company with 100,000
conversations and ~1,000,000 messages (--quick: 10,000 / ~100,000), last messages spread over a
year and skewed to recent days, plus two other companies' rows. Figures: inbox_api_p50_ms,
inbox_api_p95_ms (goal p95 < 50 ms), and p50/p95 per kind of request.
"""

import http.client
import json
import time
from urllib.parse import urlsplit

import _common as common

DB_NAME = "switchboard_bench_inbox"
REDIS_DB = 13
CHANNEL = "switchboard:events:bench:inbox"
URL = "/api/v1/conversations/"


def make_company(slug: str, agents: int):
    """A company with agents and one source account per platform (two WhatsApp numbers)."""
    from accounts.models import Company, Role, User
    from channels_integrations.models import EmailAccount, TelegramAccount, WhatsAppNumber

    company = Company.objects.create(name=slug.title(), slug=slug)
    users = [
        User.objects.create(username=f"{slug}-agent-{n}", company=company, role=Role.AGENT)
        for n in range(agents)
    ]
    sources = {
        "whatsapp": [
            WhatsAppNumber.objects.create(company=company, phone=f"+4917000{company.pk:03d}{n:03d}")
            for n in range(2)
        ],
        "telegram": TelegramAccount.objects.create(
            company=company,
            name=f"{slug} telegram",
            phone=f"+4917100{company.pk:06d}",
            api_id=1,
            api_hash="0123456789abcdef0123456789abcdef",
        ),
        "email": EmailAccount.objects.create(
            company=company,
            address=f"support@{slug}.example",
            imap_host="127.0.0.1",
            smtp_host="127.0.0.1",
            username=f"support@{slug}.example",
            password="bench",
        ),
    }
    return company, users, sources


def fill(company, users, sources, conversations: int, messages_per_conversation: int) -> None:
    """Clients, conversations and messages for one company, in three INSERT ... SELECTs."""
    from django.db import connection

    agent_ids = [user.pk for user in users]
    wa1, wa2 = (number.pk for number in sources["whatsapp"])
    params = {
        "company": company.pk,
        "n": conversations,
        "agents": agent_ids,
        "wa1": wa1,
        "wa2": wa2,
        "tg": sources["telegram"].pk,
        "mail": sources["email"].pk,
        "per": messages_per_conversation,
    }
    with connection.cursor() as cursor:
        # Foreign keys are DEFERRABLE INITIALLY DEFERRED: a million deferred checks at commit
        # would dominate the load. The rows below are consistent by construction.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO crm_client (company_id, name, phone, email, telegram_user_id,
                                    telegram_username, notes, created_at, updated_at)
            SELECT %(company)s,
                   (ARRAY['Anna','Ben','Carla','Deniz','Emre','Fatima','Georg','Hana','Ivan',
                          'Jule','Karim','Lena','Mehmet','Nora','Olga','Paul'])[1 + g %% 16]
                       || ' ' || (ARRAY['Schmidt','Yilmaz','Novak','Rossi','Meyer','Kaya',
                          'Weber','Haddad','Fischer','Wagner'])[1 + (g / 16) %% 10] || ' ' || g,
                   CASE WHEN g %% 10 < 7 THEN '+49151' || lpad((%(company)s * 1000000 + g)::text, 8, '0')
                        ELSE '' END,
                   CASE WHEN g %% 10 = 9 THEN 'client' || g || '@mail.example' ELSE '' END,
                   CASE WHEN g %% 10 IN (7, 8) THEN %(company)s * 10000000 + g END,
                   '', '', now(), now()
            FROM generate_series(1, %(n)s) AS g
            """,
            params,
        )
        # Platforms 70% WhatsApp (two numbers), 20% Telegram, 10% email; last message times
        # over a year, most of them recent; recent ones more often open, unread, unassigned.
        cursor.execute(
            """
            INSERT INTO messaging_conversation (
                company_id, platform, external_thread_id, source_id,
                client_id, assignee_id, subject, status,
                last_message_at, last_message_preview, unread_count, created_at, updated_at)
            SELECT %(company)s,
                   CASE WHEN k < 7 THEN 'whatsapp' WHEN k < 9 THEN 'telegram' ELSE 'email' END,
                   'thread-' || c.id,
                   CASE WHEN k < 5 THEN %(wa1)s WHEN k < 7 THEN %(wa2)s
                        WHEN k < 9 THEN %(tg)s ELSE %(mail)s END,
                   c.id,
                   CASE WHEN age > 0.02 AND r2 < 0.7
                        THEN (%(agents)s::bigint[])[1 + (c.id %% cardinality(%(agents)s::bigint[]))]
                   END,
                   CASE WHEN k = 9 THEN 'Order #' || c.id || ' question' ELSE '' END,
                   CASE WHEN age < 0.01 OR r2 < 0.05 THEN 'open' ELSE 'closed' END,
                   now() - age * interval '365 days',
                   'Last message of conversation ' || c.id,
                   CASE WHEN age < 0.005 OR r2 < 0.02 THEN 1 + (c.id %% 5) ELSE 0 END,
                   now() - age * interval '365 days' - interval '3 days',
                   now() - age * interval '365 days'
            FROM (SELECT id, id %% 10 AS k, power(random(), 3) AS age, random() AS r2
                  FROM crm_client WHERE company_id = %(company)s) AS c
            """,
            params,
        )
        # Messages: 1 .. 2*per-1 per conversation (per on average), alternating directions.
        cursor.execute(
            """
            INSERT INTO messaging_message (
                conversation_id, direction, external_id, sender_name, sender_address,
                author_id, bot_id, body, status, error, metadata, created_at)
            SELECT c.id,
                   CASE WHEN g %% 2 = 1 THEN 'in' ELSE 'out' END,
                   CASE WHEN g %% 2 = 1 THEN 'ext-' || c.id || '-' || g END,
                   '', '',
                   CASE WHEN g %% 2 = 0 THEN c.assignee_id END,
                   NULL,
                   'Message ' || g || ' of conversation ' || c.id
                       || ': could you tell me when my order ships?',
                   CASE WHEN g %% 2 = 1 THEN 'received' ELSE 'read' END,
                   '', '{}'::jsonb,
                   c.last_message_at - (g - 1) * interval '17 minutes'
            FROM messaging_conversation c,
                 generate_series(1, 1 + (c.id %% (2 * %(per)s - 1))) AS g
            WHERE c.company_id = %(company)s
            """,
            params,
        )
        cursor.execute("SET session_replication_role = DEFAULT")


def vacuum_analyze(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("crm_client", "messaging_conversation", "messaging_message"):
            conn.execute(f"VACUUM (ANALYZE) {table}")


class Client:
    """Sequential requests over one keep-alive HTTP connection."""

    def __init__(self, port: int, token: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def get(self, path: str) -> tuple[float, dict]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return elapsed, json.loads(body)

    def close(self):
        self.connection.close()


def local_path(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    conversations = 10_000 if args.quick else 100_000
    per_conversation = 10  # on average: ~1,000,000 messages (quick: ~100,000)

    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    from django.db import connection

    from accounts.models import ApiToken

    common.truncate_tenants()
    common.flush_redis(env["REDIS_URL"])
    started = time.perf_counter()
    company, users, sources = make_company("bench-big", agents=12)
    fill(company, users, sources, conversations, per_conversation)
    for slug in ("bench-other-a", "bench-other-b"):
        other, other_users, other_sources = make_company(slug, agents=3)
        fill(other, other_users, other_sources, conversations // 20, per_conversation // 2)
    vacuum_analyze(env["DATABASE_URL"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM messaging_message m JOIN messaging_conversation c "
            "ON c.id = m.conversation_id WHERE c.company_id = %s",
            [company.pk],
        )
        [messages] = cursor.fetchone()
    common.note(
        f"{conversations} conversations, {messages} messages in {time.perf_counter() - started:.0f}s"
    )
    _, token = ApiToken.issue(users[0], "bench")
    someone = users[0].username.rsplit("-", 1)[0]  # a search that matches nothing much
    connection.close()

    kinds = {
        "first_page": URL,
        "status_open": f"{URL}?status=open",
        "platform_whatsapp": f"{URL}?platform=whatsapp",
        "assignee_me": f"{URL}?assignee=me",
        "assignee_unassigned": f"{URL}?assignee=unassigned",
        "unread": f"{URL}?unread=1",
        "combined": f"{URL}?status=open&platform=telegram&assignee=unassigned",
        "search_name": f"{URL}?q=Nora%20Kaya",
        "search_phone": f"{URL}?q=15101000",
        "search_none": f"{URL}?q={someone}",
    }
    # As configured (DB_CONN_MAX_AGE=0: a new database connection per request), then with
    # persistent database connections.
    timings = measure(env, token, kinds)
    persistent = measure({**env, "DB_CONN_MAX_AGE": "60"}, token, kinds)

    every = [value for values in timings.values() for value in values]
    common.emit("inbox_api_conversations", conversations)
    common.emit("inbox_api_messages", messages)
    common.emit("inbox_api_requests", len(every))
    common.emit("inbox_api_p50_ms", common.percentile(every, 50))
    common.emit("inbox_api_p95_ms", common.percentile(every, 95))
    for kind, values in timings.items():
        common.emit(f"inbox_api_{kind}_p50_ms", common.percentile(values, 50))
        common.emit(f"inbox_api_{kind}_p95_ms", common.percentile(values, 95))
    every = [value for values in persistent.values() for value in values]
    common.emit("inbox_api_conn_max_age_60_p50_ms", common.percentile(every, 50))
    common.emit("inbox_api_conn_max_age_60_p95_ms", common.percentile(every, 95))
    unsearched = [
        value for kind, values in persistent.items() for value in values if "search" not in kind
    ]
    common.emit(
        "inbox_api_conn_max_age_60_without_search_p95_ms", common.percentile(unsearched, 95)
    )


def measure(env: dict, token: str, kinds: dict[str, str]) -> dict[str, list[float]]:
    """~200 sequential requests against a fresh daphne: each kind 15 times, interleaved, and
    50 `next` pages; after a warm-up of each kind 3 times."""
    port = common.free_port()
    server = common.start_daphne(env, port)
    client = Client(port, token)
    timings: dict[str, list[float]] = {kind: [] for kind in [*kinds, "next_pages"]}
    try:
        for path in list(kinds.values()) * 3:  # warm-up: connections, caches, plans
            client.get(path)
        for _ in range(15):
            for kind, path in kinds.items():
                timings[kind].append(client.get(path)[0])
        for start in (URL, f"{URL}?status=closed"):  # follow `next` 25 pages deep
            _, page = client.get(start)
            for _ in range(25):
                path = local_path(page.get("next"))
                if path is None:
                    break
                elapsed, page = client.get(path)
                timings["next_pages"].append(elapsed)
    finally:
        client.close()
        common.stop(server)
    return timings


if __name__ == "__main__":
    main()
