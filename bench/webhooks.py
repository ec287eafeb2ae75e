"""Signed WhatsApp Cloud webhooks through nginx, the way Meta sends them during a busy
broadcast: how many the web tier accepts per second against a bare ASGI endpoint on the same
server stack (nginx + the same uvicorn command and process count, in the same run), and how
fast the webhook inbox's workers ingest them end to end, with nothing lost and nothing doubled.

    .venv/bin/python bench/webhooks.py [--quick] [--deliveries N] [--items K] [--web W]
                                       [--rounds R] [--senders S]

Each delivery carries K changes (default 4: one inbound message from one of 500 clients and
K-1 status updates, "delivered", for distinct outbound messages of a broadcast); Meta batches
changes of one number into one delivery the same way. S senders (default 64) post at once,
each waiting for its answer before posting the next. Phases, in one run:

1. the bare endpoint, nothing else running: bare_accepted_per_s;
2. the product's web tier under the same conditions (no worker): accepted_per_s,
   accept_p50_ms, accept_p95_ms — the inbox fills;
   1 and 2 alternate R times (default 3): ratio_accepted_vs_bare (goal >= 0.5) is the median
   of the rounds' ratios (listed, lowest first, in ratio_accepted_vs_bare_rounds), the rates are the
   medians of each side; so is the CPU each part of the machine spent per accepted request
   (cpu_us_per_accepted_web, _nginx, _postgres, _load, _total and cores_busy; the bare
   endpoint's prefixed bare_);
3. the workers alone drain that inbox: drain_items_per_s;
4. end to end, webhooks in while the workers drain on the same 2 cores:
   ingested_items_per_s (first POST to last change ingested; goal >= 2,000),
   accepted_while_draining_per_s and its ratio to the bare endpoint.

lost and doubled are counted after phases 3 and 4 (summed); http_errors over 2 and 4.
"""

import hashlib
import hmac
import json
import statistics
import time

import _common as common
import _load
from cluster import Cluster

DB_NAME = "switchboard_bench_webhooks"
REDIS_DB = 8
CHANNEL = "switchboard:events:bench:webhooks"
APP_SECRET = "bench-app-secret"
PHONE_NUMBER_ID = "106540352242922"
CLIENTS = 500
SENDERS = 64  # the default of --senders


def cloud_number():
    """A new company (the only one: tenants are emptied first) and its Cloud number."""
    from accounts.models import Company
    from channels_integrations.models import WhatsAppNumber

    common.truncate_tenants()
    company = Company.objects.create(name="Bench", slug="bench")
    return WhatsAppNumber.objects.create(
        company=company,
        phone="+4917000000001",
        provider=WhatsAppNumber.Provider.CLOUD,
        cloud_phone_number_id=PHONE_NUMBER_ID,
        cloud_access_token="token",
        cloud_app_secret=APP_SECRET,
    )


def signed_request(number, value: dict) -> bytes:
    """The raw HTTP request of one webhook delivery carrying `value`, signed as Meta signs."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }  # fmt: skip
    raw = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return _load.request_bytes(
        "POST", f"/webhooks/whatsapp/{number.uuid}/",
        {"Content-Type": "application/json", "X-Hub-Signature-256": signature}, raw,
    )  # fmt: skip


def prepare(deliveries: int, items: int):
    from messaging.models import Conversation, Message

    number = cloud_number()
    broadcast_thread = Conversation.objects.create(
        company=number.company, platform="whatsapp", source_id=number.pk, external_thread_id="4900"
    )
    statuses = deliveries * (items - 1)
    batch = []
    for n in range(statuses):
        batch.append(
            Message(
                conversation=broadcast_thread, direction="out", status="sent",
                external_id=f"wamid.out.{n}", body="Our spring offer",
            )
        )  # fmt: skip
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    bodies = []
    status_n = 0
    for n in range(deliveries):
        phone = f"49151{n % CLIENTS:07d}"
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": f"Client {n % CLIENTS}"}, "wa_id": phone}],
            "messages": [{
                "from": phone, "id": f"wamid.in.{n}", "timestamp": "1763900000",
                "type": "text", "text": {"body": f"Hello, message {n}"},
            }],
            "statuses": [],
        }  # fmt: skip
        for _ in range(items - 1):
            value["statuses"].append({
                "id": f"wamid.out.{status_n}", "status": "delivered", "timestamp": "1763900100",
                "recipient_id": "4900",
            })  # fmt: skip
            status_n += 1
        bodies.append(signed_request(number, value))
    return number, bodies, statuses


def measured_load(cluster, bodies, senders: int) -> tuple[dict, dict]:
    """`bodies` through nginx, and the CPU each part of the machine spent meanwhile per accepted
    request, in µs: the web processes, nginx, PostgreSQL (all its processes) and this load
    generator; `cores` is how many of the machine's cores they kept busy on average."""
    web, nginx = cluster.pids("web"), cluster.pids("nginx")
    readers = {
        "web": lambda: common.cpu_seconds(*web, children=True),
        "nginx": lambda: common.cpu_seconds(*nginx, children=True),
        "load": time.process_time,
    }
    before = {part: read() for part, read in readers.items()}
    postgres_before, started = common.postgres_cpu_seconds(), time.monotonic()
    result = _load.run_sync(cluster.port, bodies, senders)
    elapsed = time.monotonic() - started
    spent = {part: read() - before[part] for part, read in readers.items()}
    spent["postgres"] = sum(
        seconds - postgres_before.get(pid, 0.0)
        for pid, seconds in common.postgres_cpu_seconds().items()
    )
    accepted = max(1, result["ok"])
    cpu = {part: seconds * 1e6 / accepted for part, seconds in spent.items()}
    cpu["total"] = sum(cpu.values())
    cpu["cores"] = sum(spent.values()) / elapsed
    return result, cpu


def waiting() -> int:
    from webhook_inbox.services import backlog

    return backlog()["waiting"]


def until_empty(timeout: float, poll: float = 0.2) -> float:
    """Waits until no delivery waits in the inbox (at most `timeout` s); returns that moment."""
    deadline = time.monotonic() + timeout
    while waiting() and time.monotonic() < deadline:
        time.sleep(poll)
    return time.monotonic()


def posted_while_draining(env, web: int, bodies, senders: int, timeout: float):
    """`bodies` posted through nginx as fast as the web tier takes them while one worker
    (prefork, 2) drains, on the same machine: (the load's result, when the first was posted,
    when the last was accepted, when the inbox was empty)."""
    with Cluster(env, web=web, ws=0, workers=1, worker_concurrency=2, beat=True) as cluster:
        started = time.monotonic()
        result = _load.run_sync(cluster.port, bodies, senders)
        accepted_at = time.monotonic()
        return result, started, accepted_at, until_empty(timeout)


def outcome(number, deliveries: int, statuses: int) -> dict:
    from django.db.models import Count, Sum

    from messaging.models import Conversation, Message

    inbound = Message.objects.filter(direction="in", conversation__source_id=number.pk)
    stored = inbound.count()
    repeated = inbound.values("external_id").annotate(n=Count("id")).filter(n__gt=1).count()
    unread = Conversation.objects.filter(source_id=number.pk).aggregate(n=Sum("unread_count"))["n"]
    delivered = Message.objects.filter(direction="out", status="delivered").count()
    return {
        "lost": (deliveries - stored) + (statuses - delivered),
        "doubled": repeated + max(0, (unread or 0) - stored),
    }


def empty_inbox() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE webhook_inbox_delivery")


def reset() -> None:
    """Back to before the first delivery: no inbound message, every status `sent`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE messaging_message SET status = 'sent' WHERE direction = 'out'")
        cursor.execute("DELETE FROM messaging_message WHERE direction = 'in'")
        cursor.execute("UPDATE messaging_conversation SET unread_count = 0")


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        deliveries={"type": int, "default": None},
        items={"type": int, "default": 4},
        web={"type": int, "default": 2},
        rounds={"type": int, "default": 3},
        senders={"type": int, "default": SENDERS},
    )
    deliveries = args.deliveries or (1000 if args.quick else 20000)
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.flush_redis(env["REDIS_URL"])
    env["DB_POOL_MAX_SIZE"] = "8"
    common.note(f"preparing {deliveries} deliveries of {args.items} changes")
    number, bodies, statuses = prepare(deliveries, args.items)
    items_total = deliveries * args.items
    port_path_count = len(bodies)

    # Phases 1 and 2 alternate, `rounds` times: this machine's speed drifts by a third within
    # minutes (shared cores), so one bare run against one product run measures the drift as
    # much as the product. Each round's ratio compares two runs taken seconds apart; the
    # figure is their median. Each product round starts from an empty inbox and fills it.
    warm = min(500, deliveries // 10)  # the first requests open connections and caches
    rounds = []
    cpu_rounds: dict[str, list[dict]] = {"bare": [], "product": []}
    latencies: list[float] = []
    http_errors = 0
    for round_n in range(args.rounds):
        common.note(f"round {round_n + 1}: bare ASGI endpoint")
        with Cluster(env, web=args.web, ws=0, app="bench.bare_asgi:app") as bare:
            _load.run_sync(bare.port, bodies[:warm], args.senders)
            result, cpu = measured_load(bare, bodies[warm:], args.senders)
        cpu_rounds["bare"].append(cpu)
        bare_rate = result["ok"] / result["elapsed"]
        # The web tier under the same conditions (no worker): what it accepts per second.
        # The drained kicks wait in the broker.
        common.note(f"round {round_n + 1}: the product's web tier alone")
        empty_inbox()
        with Cluster(env, web=args.web, ws=0) as web_tier:
            _load.run_sync(web_tier.port, bodies[:warm], args.senders)
            result, cpu = measured_load(web_tier, bodies[warm:], args.senders)
        cpu_rounds["product"].append(cpu)
        rounds.append((bare_rate, result["ok"] / result["elapsed"]))
        latencies += result["latencies"]
        http_errors += sum(result["errors"].values())
    ratios = sorted(accepted / bare for bare, accepted in rounds)
    bare_rate = statistics.median(bare for bare, _accepted in rounds)
    accept_rate = statistics.median(accepted for _bare, accepted in rounds)
    lat = sorted(latencies)

    # The workers alone, from that full inbox.
    common.note("the workers alone, from a full inbox")
    with Cluster(env, web=0, ws=0, workers=1, worker_concurrency=2, beat=True):
        from webhook_inbox.services import kick

        drain_started = time.monotonic()
        kick()
        drain_rate = items_total / (until_empty(600, poll=0.1) - drain_started)
    checked = outcome(number, deliveries, statuses)

    # End to end, the way a busy broadcast's statuses arrive: webhooks in while one worker
    # (prefork, 2) drains, on the same machine. The same deliveries again, from a clean slate
    # (every change a duplicate or a no-op now would flatter the figure).
    reset()
    common.note("the product: webhooks in, workers draining")
    result, started, accepted_at, ingested_at = posted_while_draining(
        env, args.web, bodies, args.senders, 600
    )
    draining_accept_rate = result["ok"] / (accepted_at - started)
    http_errors += sum(result["errors"].values())
    end_to_end = outcome(number, deliveries, statuses)

    common.emit("deliveries", port_path_count)
    common.emit("items_per_delivery", args.items)
    common.emit("web_processes", args.web)
    common.emit("senders", args.senders)
    common.emit("bare_accepted_per_s", bare_rate)
    common.emit("accepted_per_s", accept_rate)
    common.emit("ratio_accepted_vs_bare", statistics.median(ratios))
    common.emit("ratio_accepted_vs_bare_rounds", " ".join(f"{ratio:.3f}" for ratio in ratios))
    # Where the machine's CPU went per accepted request (medians of the rounds): with 64
    # senders the 2 cores are nearly saturated, so accepted/s ~ cores / total.
    for side, prefix in (("bare", "bare_"), ("product", "")):
        for part in ("web", "nginx", "postgres", "load", "total", "cores"):
            name = "cores_busy" if part == "cores" else f"cpu_us_per_accepted_{part}"
            common.emit(prefix + name, statistics.median(c[part] for c in cpu_rounds[side]))
    common.emit("accept_p50_ms", common.percentile(lat, 50) * 1000)
    common.emit("accept_p95_ms", common.percentile(lat, 95) * 1000)
    common.emit("drain_items_per_s", drain_rate)
    common.emit("accepted_while_draining_per_s", draining_accept_rate)
    common.emit("ratio_accepted_while_draining_vs_bare", draining_accept_rate / bare_rate)
    common.emit("ingested_items_per_s", items_total / (ingested_at - started))
    common.emit("backlog_left", waiting())
    common.emit("http_errors", http_errors)
    common.emit("lost", checked["lost"] + end_to_end["lost"])
    common.emit("doubled", checked["doubled"] + end_to_end["doubled"])


if __name__ == "__main__":
    main()
