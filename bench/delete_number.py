"""Deleting a WhatsApp number with a long history: our delete (one SQL DELETE, PostgreSQL's
ON DELETE CASCADE does the rest) beside Django's default collector (`number.delete()`), on the
same data in the same run, plus the deletion preview that the delete page shows first.

    .venv/bin/python bench/delete_number.py [--quick] [--million [--with-collector]]

Data (generated with INSERT ... SELECT generate_series, not the ORM), per number:
    default      10,000 conversations,   200,000 messages, 100,000 broadcast recipients
    --quick       1,000 conversations,    20,000 messages,  10,000 broadcast recipients
    --million    10,000 conversations, 1,000,000 messages, 100,000 broadcast recipients
an attachment (recorded, no file) on every tenth message, plus 20 bots with 10 rules each, a session, and 10,000 clients (who stay: they belong to
the company). A second, small number of the same company must come through untouched.

Figures: preview_ms (median of 5; preview_first_ms is the first, colder call; the data is
VACUUM ANALYZEd first, as autovacuum would have done to a long history, and
preview_before_vacuum_ms is the median right after the bulk insert, before that),
cascade_delete_s, cascade_delete_peak_mb, collector_delete_s, collector_delete_peak_mb,
speedup_vs_collector (goal >= 5), rows_left (must be 0) and other_number_intact.
Peak memory is the process's resident memory (VmRSS, sampled every 5 ms) above what it was
when the delete started: it counts Python objects, the driver's buffers and everything else.
Django's collector deletes the number's own rows and leaves its conversations (and their
messages) to the database trigger that deletes a deleted source's conversations (they name
their source by id since messaging migration 0009); before that it loaded every message of the
number into Python (attachments point at messages). Ours loads nothing but the names of stored
attachment files.
The collector is skipped for --million unless --with-collector (it is slow).
"""

import statistics
import threading
import time
from pathlib import Path

import _common as common

DB_NAME = "switchboard_bench_delete"
REDIS_DB = 13
CHANNEL = "switchboard:events:bench:delete"
BOTS, RULES_PER_BOT = 20, 10

SIZES = {
    # conversations, messages per conversation, broadcasts, recipients per broadcast
    "quick": (1_000, 20, 10, 1_000),
    "default": (10_000, 20, 20, 5_000),
    "million": (10_000, 100, 20, 5_000),
}

NUMBER_SQL = "SELECT count(*) FROM channels_integrations_whatsappnumber WHERE id = %(id)s"


# ---------------------------------------------------------------- memory


class PeakRSS:
    """Peak resident memory of this process above its level at start(), sampled in a thread
    (psycopg releases the GIL while PostgreSQL works, and Python switches threads every 5 ms)."""

    STATUS = Path("/proc/self/status")

    def __init__(self, interval: float = 0.005):
        self.interval = interval

    @classmethod
    def rss_bytes(cls) -> int:
        for line in cls.STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc/self/status")

    def __enter__(self):
        self.start = self.peak = self.rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self.peak = max(self.peak, self.rss_bytes())
        self._stop.set()
        self._thread.join()

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.start) / 2**20


# ---------------------------------------------------------------- data


def make_company():
    from accounts.models import Company

    common.truncate_tenants()
    company = Company.objects.create(name="Bench Delete", slug="bench-delete")
    with _cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO crm_client (company_id, name, phone, email, telegram_username, notes,
                                    created_at, updated_at)
            SELECT %(company)s, 'Client ' || g, '+4915' || lpad(g::text, 9, '0'), '', '', '',
                   now(), now()
            FROM generate_series(1, 10000) g
            """,
            {"company": company.pk},
        )
    return company


def make_number(company, phone: str, size: tuple[int, int, int, int]):
    """One number and everything that hangs off it; returns the number."""
    from channels_integrations.models import WhatsAppNumber, WhatsAppSession

    conversations, per_conversation, broadcasts, per_broadcast = size
    number = WhatsAppNumber.objects.create(
        company=company,
        phone=phone,
        display_name=f"Bench {phone}",
        status=WhatsAppNumber.Status.CONNECTED,
        cloud_access_token="bench-token",
    )
    WhatsAppSession.objects.create(number=number, status=WhatsAppSession.Status.CONNECTED)
    params = {
        "number": number.pk,
        "company": company.pk,
        "bots": BOTS,
        "rules": RULES_PER_BOT,
        "conversations": conversations,
        "per_conversation": per_conversation,
        "broadcasts": broadcasts,
        "per_broadcast": per_broadcast,
    }
    statements = [
        # Bots and their ordered rules.
        """
        INSERT INTO channels_integrations_bot (number_id, company_id, name, is_active, greeting,
            created_at)
        SELECT %(number)s, n.company_id, 'Bot ' || g, true, 'Hello!', now()
        FROM generate_series(1, %(bots)s) g, channels_integrations_whatsappnumber n
        WHERE n.id = %(number)s
        """,
        """
        INSERT INTO channels_integrations_botrule (bot_id, position, match_type, trigger,
                                                   reply_text, is_active)
        SELECT b.id, g, 'keyword', 'word' || g, 'Reply number ' || g, true
        FROM channels_integrations_bot b, generate_series(1, %(rules)s) g
        WHERE b.number_id = %(number)s
        """,
        # One conversation per client (the company's first N clients).
        """
        INSERT INTO messaging_conversation (company_id, platform, external_thread_id,
            source_id, client_id, subject, status, last_message_at,
            last_message_preview, unread_count, created_at, updated_at)
        SELECT %(company)s, 'whatsapp', substr(c.phone, 2), %(number)s, c.id, '', 'open',
               now(), 'Last words', 0, now(), now()
        FROM (SELECT id, phone FROM crm_client WHERE company_id = %(company)s
              ORDER BY id LIMIT %(conversations)s) c
        """,
        # Messages: alternating in/out; every tenth outbound one answered by a bot (SET NULL
        # work for the collector when the bots go).
        """
        INSERT INTO messaging_message (conversation_id, direction, external_id, sender_name,
            sender_address, bot_id, body, status, error, metadata, created_at)
        SELECT conv.id,
               CASE WHEN g %% 2 = 1 THEN 'in' ELSE 'out' END,
               'wamid.' || conv.id || '.' || g,
               '', conv.external_thread_id,
               CASE WHEN g %% 10 = 0 THEN bot.id END,
               'Message ' || g || ' of a long conversation about an order, a parcel and a refund.',
               CASE WHEN g %% 2 = 1 THEN 'received' ELSE 'sent' END,
               '', '{}'::jsonb,
               now() - make_interval(mins => %(per_conversation)s - g)
        FROM messaging_conversation conv
        CROSS JOIN generate_series(1, %(per_conversation)s) g
        CROSS JOIN LATERAL (SELECT id FROM channels_integrations_bot
                            WHERE number_id = %(number)s ORDER BY id LIMIT 1) bot
        WHERE conv.platform = 'whatsapp' AND conv.source_id = %(number)s
        """,
        """
        INSERT INTO channels_integrations_broadcast (number_id, company_id, name, text, status,
            template_name, template_language, template_variables, created_at)
        SELECT %(number)s, n.company_id, 'Broadcast ' || g, 'Our summer sale starts today.',
               'completed', '', '', '{}'::jsonb, now()
        FROM generate_series(1, %(broadcasts)s) g, channels_integrations_whatsappnumber n
        WHERE n.id = %(number)s
        """,
        """
        INSERT INTO channels_integrations_broadcastrecipient (broadcast_id, phone, status,
            provider_message_id, error, updated_at)
        SELECT b.id, '+4916' || lpad(g::text, 9, '0'), 'sent', 'wamid.b' || b.id || '.' || g,
               '', now()
        FROM channels_integrations_broadcast b, generate_series(1, %(per_broadcast)s) g
        WHERE b.number_id = %(number)s
        """,
        # An attachment on every tenth message, recorded without a stored file.
        """
        INSERT INTO messaging_attachment (message_id, conversation_id, kind, filename,
            content_type, size, file, external_id, download_state, download_error,
            download_attempts, download_ref, created_at)
        SELECT m.id, m.conversation_id, 'image', 'photo-' || m.id || '.jpg', 'image/jpeg',
               120000, '', '', 'ready', '', 0, '{}'::jsonb, now()
        FROM messaging_message m JOIN messaging_conversation c ON c.id = m.conversation_id
        WHERE c.platform = 'whatsapp' AND c.source_id = %(number)s AND m.id %% 10 = 0
        """,
    ]
    with _cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)
    return number


def vacuum_analyze() -> None:
    """What autovacuum does to a table with a long history: fresh statistics and visibility
    map, so counts can use index-only scans (as they would in production)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "messaging_message",
            "messaging_attachment",
            "messaging_conversation",
            "channels_integrations_broadcastrecipient",
            "channels_integrations_broadcast",
            "channels_integrations_botrule",
            "channels_integrations_bot",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def _cursor():
    from django.db import connection, transaction

    class Atomic:
        def __enter__(self):
            self.atomic = transaction.atomic()
            self.atomic.__enter__()
            self.cursor = connection.cursor()
            return self.cursor

        def __exit__(self, *exc):
            self.cursor.close()
            return self.atomic.__exit__(*exc)

    return Atomic()


def rows_of(number_id: int) -> dict[str, int]:
    """Every row that belongs to the number, by table (the preview's counts + the number)."""
    from django.db import connection

    from channels_integrations.whatsapp.numbers import PREVIEW_SQL

    with connection.cursor() as cursor:
        cursor.execute(PREVIEW_SQL, {"id": number_id})
        counts = dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))
        cursor.execute(NUMBER_SQL, {"id": number_id})
        counts["numbers"] = cursor.fetchone()[0]
    return counts


def build(size, label: str, *, before_vacuum=None):
    common.note(f"generating {label}: {size[0]:,} conversations, {size[0] * size[1]:,} messages")
    started = time.perf_counter()
    company = make_company()
    number = make_number(company, "+4917000000001", size)
    other = make_number(company, "+4917000000002", (50, 4, 2, 25))
    if before_vacuum:
        before_vacuum(number)
    vacuum_analyze()
    common.note(f"generated in {time.perf_counter() - started:.1f}s")
    return number, other


# ---------------------------------------------------------------- measurements


def measure_preview(number) -> tuple[float, float, dict]:
    from channels_integrations.whatsapp.numbers import deletion_preview

    timings = []
    for _ in range(5):
        started = time.perf_counter()
        counts = deletion_preview(number)
        timings.append((time.perf_counter() - started) * 1000)
    return timings[0], statistics.median(timings), counts


def measure(delete) -> tuple[float, float]:
    import gc

    gc.collect()
    with PeakRSS() as memory:
        started = time.perf_counter()
        delete()
        seconds = time.perf_counter() - started
    return seconds, memory.delta_mb


def check_gone(number_id: int, other_id: int, other_before: dict, label: str) -> int:
    left = sum(rows_of(number_id).values())
    if left:
        common.note(f"{label}: {left} rows of the deleted number are left: {rows_of(number_id)}")
    if rows_of(other_id) != other_before:
        raise SystemExit(f"{label}: the other number's rows changed")
    return left


def main() -> None:
    args = common.parse_args(
        __doc__.splitlines()[0],
        million=dict(action="store_true", help="1,000,000 messages"),
        with_collector=dict(
            action="store_true", help="with --million: run the collector too (slow)"
        ),
    )
    common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    from channels_integrations.models import WhatsAppNumber
    from channels_integrations.whatsapp.numbers import run_number_deletion

    label = "million" if args.million else "quick" if args.quick else "default"
    size = SIZES[label]

    unvacuumed = []
    number, other = build(
        size, label, before_vacuum=lambda n: unvacuumed.append(measure_preview(n)[1])
    )
    other_before = rows_of(other.pk)
    preview_first, preview_ms, counts = measure_preview(number)
    expected = {
        "conversations": size[0],
        "messages": size[0] * size[1],
        "broadcasts": size[2],
        "broadcast_recipients": size[2] * size[3],
        "bots": BOTS,
        "bot_rules": BOTS * RULES_PER_BOT,
        "sessions": 1,
    }
    if {name: counts[name] for name in expected} != expected:
        raise SystemExit(f"the preview counted {counts}, expected {expected}")

    common.emit("messages", counts["messages"])
    common.emit("conversations", counts["conversations"])
    common.emit("attachments", counts["attachments"])
    common.emit("broadcast_recipients", counts["broadcast_recipients"])
    common.emit("rows_per_number", counts["total"])
    common.emit("preview_first_ms", preview_first)
    common.emit("preview_ms", preview_ms)
    common.emit("preview_before_vacuum_ms", unvacuumed[0])

    # Ours: what the delete page and the worker run (one transaction, one SQL DELETE).
    cascade_s, cascade_mb = measure(lambda: run_number_deletion(number.pk))
    left = check_gone(number.pk, other.pk, other_before, "cascade")
    common.emit("cascade_delete_s", cascade_s)
    common.emit("cascade_delete_peak_mb", cascade_mb)
    common.emit("cascade_rows_left", left)

    if args.million and not args.with_collector:
        common.note("collector skipped for --million (add --with-collector to run it)")
    else:
        # The same data again, deleted by Django's collector (`Model.delete()`).
        number, other = build(size, label)
        other_before = rows_of(other.pk)
        victim = WhatsAppNumber.objects.get(pk=number.pk)
        collector_s, collector_mb = measure(victim.delete)
        left += check_gone(number.pk, other.pk, other_before, "collector")
        common.emit("collector_delete_s", collector_s)
        common.emit("collector_delete_peak_mb", collector_mb)
        common.emit("speedup_vs_collector", collector_s / cascade_s)

    common.emit("rows_left", left)
    common.emit("other_number_intact", "yes")
    common.truncate_tenants()  # leave the bench database small


if __name__ == "__main__":
    main()
