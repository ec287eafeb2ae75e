"""Search over 1,000,000 messages: our full-text search (GIN index, inbox_search.fts) against
`ILIKE '%term%'` on the same data, in the same run, query by query.

    .venv/bin/python bench/search.py [--quick]

Data (INSERT ... SELECT generate_series, not the ORM), in its own database: one company with
100,000 clients and conversations and ~1,000,000 messages (--quick: 5,000 / ~50,000), plus
another company's rows. Message text is 4-12 words drawn from a 30,000-word vocabulary with a
Zipf-like skew (a word's share falls with its rank): Russian, Ukrainian and English words
spread over the ranks (so some are common, most rare, as in real chats) and made-up words for
the long tail; client names in Latin and Cyrillic letters; E.164 phones.

200 queries, mixed: Russian, Ukrainian and English words, two-word phrases, client names,
phone fragments (5-7 digits from the middle of a number). Each runs once through what the
product runs (message words: inbox_search.selectors.message_hits, first page of 20 with headlines;
names and phones: the inbox search, messaging.selectors.inbox_conversations(query=...), first
page of 50: trigram client match + message text), and once as ILIKE '%term%' over the same
columns, same company, same order and limit. Figures: p50/p95 of each, per kind, the speed-up
of p95, and how long the migration's index build took on this table (inbox_search 0001).
"""

import random
import time
from datetime import timedelta

import _common as common

DB_NAME = "switchboard_bench_search"
REDIS_DB = 11
CHANNEL = "switchboard:events:bench:search"

ENGLISH = """order delivery parcel invoice refund payment shipping warehouse address tracking
courier discount coupon receipt account password subscription cancel return exchange size
colour broken damaged missing late tomorrow yesterday morning evening weekend holiday price
quote contract manager support question answer problem urgent thanks please hello goodbye
customer product catalogue model battery charger screen keyboard laptop phone tablet cable
printer monitor hamburg berlin munich warranty repair service appointment booking""".split()
RUSSIAN = """заказ доставка посылка счёт возврат оплата склад адрес курьер скидка купон чек
аккаунт пароль подписка отмена обмен размер цвет сломан повреждён пропал поздно завтра вчера
утром вечером выходные праздник цена договор менеджер поддержка вопрос ответ проблема срочно
спасибо пожалуйста здравствуйте клиент товар каталог модель батарея зарядка экран клавиатура
ноутбук телефон планшет кабель принтер монитор гамбург берлин гарантия ремонт запись""".split()
UKRAINIAN = """замовлення доставлення посилка рахунок повернення оплата склад адреса кур'єр
знижка купон чек обліковий пароль підписка скасування обмін розмір колір зламаний
пошкоджений зник пізно завтра вчора вранці ввечері вихідні свято ціна договір менеджер
підтримка питання відповідь проблема терміново дякую будь ласка вітаю клієнт товар каталог
модель батарея зарядний екран клавіатура ноутбук телефон планшет кабель принтер монітор
гарантія ремонт київ львів одеса харків дніпро""".split()
FIRST = """Anna Ben Carla Deniz Emre Fatima Georg Hana Ivan Jule Karim Lena Mehmet Nora Olga
Paul Олена Андрій Ірина Тарас Наталія Сергій Ольга Дмитро Марія Олександр""".split()
LAST = """Schmidt Yilmaz Novak Rossi Meyer Kaya Weber Haddad Fischer Wagner Коваленко
Шевченко Бондаренко Ткаченко Кравченко Иванов Смирнов Кузнецов Попов Соколов""".split()
VOCABULARY_SIZE = 30_000
SKEW = 3.0  # rank of a word = N * random()^SKEW


def vocabulary(rng: random.Random) -> list[str]:
    """30,000 words: made-up ones (Latin and Cyrillic syllables) with the real words placed
    at ranks from 20 to 5,000, so real words range from common to rare."""
    latin = "ka lo mi ne su ta ri vo pe da go lu be ni sa to".split()
    cyrillic = "ка ло ми не су та ри во пе да го лу бе ні са то жи ща ць ю".split()
    made_up, seen = [], set()
    while len(made_up) < VOCABULARY_SIZE:
        syllables = latin if rng.random() < 0.5 else cyrillic
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(3, 5)))
        if word not in seen:
            seen.add(word)
            made_up.append(word)
    real = [word for word in dict.fromkeys(ENGLISH + RUSSIAN + UKRAINIAN) if word not in seen]
    words = made_up[: VOCABULARY_SIZE - len(real)]
    for word in real:
        words.insert(int(20 * (250 ** rng.random())), word)  # ranks 20 .. 5,000, log-spread
    return words


def fill(company, users, sources, conversations: int, per: int, words: list[str]) -> None:
    from django.db import connection

    params = {
        "company": company.pk,
        "n": conversations,
        "agents": [user.pk for user in users],
        "wa": sources["whatsapp"][0].pk,
        "tg": sources["telegram"].pk,
        "mail": sources["email"].pk,
        "per": per,
        "first": FIRST,
        "last": LAST,
    }
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            """
            INSERT INTO crm_client (company_id, name, phone, email, telegram_user_id,
                                    telegram_username, notes, created_at, updated_at)
            SELECT %(company)s,
                   (%(first)s::text[])[1 + g %% cardinality(%(first)s::text[])] || ' '
                     || (%(last)s::text[])[1 + (g / 7) %% cardinality(%(last)s::text[])],
                   '+49151' || lpad((%(company)s * 1000000 + g * 7919 %% 1000000)::text, 8, '0'),
                   CASE WHEN g %% 10 = 9 THEN 'client' || g || '@mail.example' ELSE '' END,
                   %(company)s * 10000000 + g, '', '', now(), now()
            FROM generate_series(1, %(n)s) AS g
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO messaging_conversation (
                company_id, platform, external_thread_id, source_id, client_id, assignee_id,
                subject, status, last_message_at, last_message_preview, unread_count,
                created_at, updated_at)
            SELECT %(company)s,
                   CASE WHEN k < 7 THEN 'whatsapp' WHEN k < 9 THEN 'telegram' ELSE 'email' END,
                   'thread-' || c.id,
                   CASE WHEN k < 7 THEN %(wa)s WHEN k < 9 THEN %(tg)s ELSE %(mail)s END,
                   c.id,
                   (%(agents)s::bigint[])[1 + (c.id %% cardinality(%(agents)s::bigint[]))],
                   CASE WHEN k = 9 THEN 'Order #' || c.id || ' question' ELSE '' END,
                   'open', now() - age * interval '365 days', '', 0,
                   now() - age * interval '365 days', now() - age * interval '365 days'
            FROM (SELECT id, id %% 10 AS k, power(random(), 3) AS age
                  FROM crm_client WHERE company_id = %(company)s) AS c
            """,
            params,
        )
        # Messages through COPY (text drawn in Python: a correlated array lookup per word in
        # SQL is far slower): 1 .. 2*per-1 per conversation, alternating directions.
        cursor.execute(
            "SELECT id, last_message_at FROM messaging_conversation WHERE company_id = %s",
            [company.pk],
        )
        threads = cursor.fetchall()
        rng = random.Random(company.pk)
        size = len(words)
        columns = (
            "conversation_id, direction, external_id, sender_name, sender_address, body, "
            "status, error, metadata, created_at"
        )
        with cursor.cursor.copy(f"COPY messaging_message ({columns}) FROM STDIN") as copy:
            for conversation_id, last in threads:
                for g in range(1, 2 + conversation_id % (2 * per - 1)):
                    inbound = g % 2 == 1
                    body = " ".join(
                        words[int(size * rng.random() ** SKEW)]
                        for _ in range(4 + (g + conversation_id) % 9)
                    )
                    copy.write_row(
                        (
                            conversation_id,
                            "in" if inbound else "out",
                            f"ext-{conversation_id}-{g}" if inbound else None,
                            "",
                            "",
                            body,
                            "received" if inbound else "read",
                            "",
                            "{}",
                            last - timedelta(minutes=17 * (g - 1)),
                        )
                    )
        cursor.execute("SET session_replication_role = DEFAULT")


def queries(rng: random.Random, words: list[str], phones: list[str]) -> list[tuple[str, str]]:
    """200 (kind, query) pairs."""
    real = {
        "english": [w for w in ENGLISH if w in words],
        "russian": [w for w in RUSSIAN if w in words],
        "ukrainian": [w for w in UKRAINIAN if w in words and w not in RUSSIAN],
    }
    tail = words[5000:]
    picked = []
    for _ in range(30):
        for kind, pool in real.items():
            picked.append((kind, rng.choice(pool)))
    for _ in range(30):
        picked.append(("rare_word", rng.choice(tail)))
    for _ in range(20):
        picked.append(("two_words", f"{rng.choice(real['russian'])} {rng.choice(words[:3000])}"))
    for _ in range(30):
        name = rng.choice(LAST) if rng.random() < 0.5 else f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        picked.append(("name", name))
    for _ in range(30):
        phone = rng.choice(phones)
        start = rng.randint(4, len(phone) - 7)
        picked.append(("phone", phone[start : start + rng.randint(5, 7)]))
    return picked


def ilike_messages(cursor, company_id: int, term: str) -> None:
    """The naive search: each word ILIKE '%word%' in the text, newest first, first 20."""
    words = term.split()
    cursor.execute(
        "SELECT m.id, m.body FROM messaging_message m "
        "JOIN messaging_conversation c ON c.id = m.conversation_id "
        "WHERE c.company_id = %s AND " + " AND ".join(["m.body ILIKE %s"] * len(words)) + " "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT 20",
        [company_id, *(f"%{word}%" for word in words)],
    )
    cursor.fetchall()


def ilike_conversations(cursor, company_id: int, term: str) -> None:
    """The naive inbox search: name, phone, email, subject or any message ILIKE '%term%'."""
    pattern = f"%{term}%"
    cursor.execute(
        "SELECT c.id FROM messaging_conversation c "
        "LEFT JOIN crm_client cl ON cl.id = c.client_id WHERE c.company_id = %s AND ("
        "cl.name ILIKE %s OR cl.phone ILIKE %s OR cl.email ILIKE %s OR c.subject ILIKE %s "
        "OR EXISTS (SELECT 1 FROM messaging_message m WHERE m.conversation_id = c.id "
        "AND m.body ILIKE %s)) ORDER BY c.last_message_at DESC, c.id DESC LIMIT 50",
        [company_id, pattern, pattern, pattern, pattern, pattern],
    )
    cursor.fetchall()


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        reuse={"action": "store_true", "help": "an earlier run's data: no load, no index build"},
    )
    conversations = 5_000 if args.quick else 100_000
    per_conversation = 10

    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    from django.db import connection
    from inbox_api import make_company, vacuum_analyze

    from inbox_search.fts import message_index_sql
    from inbox_search.selectors import message_hits
    from messaging.selectors import inbox_conversations

    rng = random.Random(18)
    words = vocabulary(rng)
    from accounts.models import Company, User

    existing = Company.objects.filter(slug="bench-search").first()
    if args.reuse and existing is not None:
        # --reuse: an earlier run's data and index, as they are (nothing loaded or built).
        company = existing
        users = list(User.objects.filter(company=company).order_by("id"))
        common.note("reusing the data of an earlier run")
    else:
        common.truncate_tenants()
        started = time.perf_counter()
        company, users, sources = make_company("bench-search", agents=5)
        fill(company, users, sources, conversations, per_conversation, words)
        other, other_users, other_sources = make_company("bench-search-other", agents=2)
        fill(other, other_users, other_sources, conversations // 20, per_conversation, words)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM messaging_message")
            [messages] = cursor.fetchone()
        common.note(f"{messages} messages loaded in {time.perf_counter() - started:.0f}s")
        common.emit("search_messages", messages)

        # The migration's index (inbox_search 0001), built again on the full table.
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS msg_body_fts_idx")
            began = time.perf_counter()
            cursor.execute(message_index_sql())
            common.emit("search_index_build_s", time.perf_counter() - began)
            cursor.execute("SELECT pg_relation_size('msg_body_fts_idx')")
            common.emit("search_index_mb", cursor.fetchone()[0] / 1e6)
        vacuum_analyze(env["DATABASE_URL"])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT phone FROM crm_client WHERE company_id = %s LIMIT 2000", [company.pk]
        )
        phones = [row[0] for row in cursor.fetchall()]
    user = users[0]
    mix = queries(rng, words, phones)

    def ours(kind, q):
        if kind in ("name", "phone"):
            list(inbox_conversations(user, query=q)[:50])
        else:
            list(message_hits(user, q)[:20])

    def naive(kind, q):
        with connection.cursor() as cursor:
            if kind in ("name", "phone"):
                ilike_conversations(cursor, company.pk, q)
            else:
                ilike_messages(cursor, company.pk, q)

    for kind, q in mix[::10]:  # warm-up: caches, plans
        ours(kind, q)
        naive(kind, q)
    fts_times, ilike_times, inbox_list_times = {}, {}, []
    for kind, q in mix:
        began = time.perf_counter()
        ours(kind, q)
        fts_times.setdefault(kind, []).append((time.perf_counter() - began) * 1000)
        if kind not in ("name", "phone"):  # the inbox search box with a word: conversations
            began = time.perf_counter()
            list(inbox_conversations(user, query=q)[:50])
            inbox_list_times.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        naive(kind, q)
        ilike_times.setdefault(kind, []).append((time.perf_counter() - began) * 1000)

    every_fts = [value for values in fts_times.values() for value in values]
    every_ilike = [value for values in ilike_times.values() for value in values]
    fts_p95 = common.percentile(every_fts, 95)
    ilike_p95 = common.percentile(every_ilike, 95)
    common.emit("search_queries", len(every_fts))
    common.emit("search_fts_p50_ms", common.percentile(every_fts, 50))
    common.emit("search_fts_p95_ms", fts_p95)
    common.emit("search_ilike_p50_ms", common.percentile(every_ilike, 50))
    common.emit("search_ilike_p95_ms", ilike_p95)
    common.emit("search_speedup_p95_x", ilike_p95 / fts_p95)
    common.emit("search_words_inbox_list_p95_ms", common.percentile(inbox_list_times, 95))
    for kind in fts_times:
        common.emit(f"search_{kind}_fts_p95_ms", common.percentile(fts_times[kind], 95))
        common.emit(f"search_{kind}_ilike_p95_ms", common.percentile(ilike_times[kind], 95))


if __name__ == "__main__":
    main()
