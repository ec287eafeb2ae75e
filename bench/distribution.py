"""Lead distribution under concurrency: new conversations per second through `ingest_inbound`
from 4 threads when each one is assigned round-robin (the team's row locked for the choice),
against the same with no distribution, and how fair and exact it stayed.

    .venv/bin/python bench/distribution.py [--quick]

Figures: distributed_per_s, undistributed_per_s, ratio_distributed_vs_none, assigned_spread
(most minus fewest conversations per agent; 0 is strictly in turn), double_or_missed (must be 0).
"""

import threading
import time

import _common as common

DB_NAME = "switchboard_bench_distribution"
REDIS_DB = 11
CHANNEL = "switchboard:events:bench:distribution"
THREADS = 4
AGENTS = 10


def _run(number, prefix: str, count: int) -> float:
    from django.db import connection

    from messaging.services import Sender, ingest_inbound

    barrier = threading.Barrier(THREADS + 1)

    def work(offset):
        barrier.wait()
        for n in range(offset, count, THREADS):
            phone = f"+49152{n:07d}"
            ingest_inbound(
                number, f"{prefix}-{n}", f"{prefix}-m{n}", Sender(address=phone, phone=phone), "Hi"
            )
        connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started)


def main():
    args = common.parse_args(__doc__)
    env = common.bench_env(DB_NAME, REDIS_DB, CHANNEL)
    common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.truncate_tenants()
    common.flush_redis(env["REDIS_URL"])
    from accounts import presence
    from accounts.models import Company, Role, User
    from channels_integrations.models import WhatsAppNumber
    from messaging.models import Conversation
    from teams.models import Distribution, Team

    count = 400 if args.quick else 4000
    company = Company.objects.create(name="Bench Distribution", slug="bench-distribution")
    agents = [
        User.objects.create(username=f"bench-agent-{n}", company=company, role=Role.AGENT)
        for n in range(AGENTS)
    ]
    for agent in agents:
        presence.heartbeat(company.pk, agent.pk, f"bench-{agent.pk}")
    team = Team.objects.create(company=company, name="Sales")
    team.members.set(agents)
    routed = WhatsAppNumber.objects.create(
        company=company, phone="+4917000000001", team=team, distribution=Distribution.ROUND_ROBIN
    )
    plain = WhatsAppNumber.objects.create(company=company, phone="+4917000000002")
    _run(plain, "warm", 40)
    common.note(f"{count} new conversations from {THREADS} threads, {AGENTS} agents online")
    distributed = _run(routed, "rr", count)
    undistributed = _run(plain, "none", count)
    per_agent = [
        Conversation.objects.filter(source_id=routed.pk, assignee=agent).count() for agent in agents
    ]
    unassigned = Conversation.objects.filter(
        platform="whatsapp", source_id=routed.pk, assignee__isnull=True
    ).count()
    common.emit("distributed_per_s", distributed)
    common.emit("undistributed_per_s", undistributed)
    common.emit("ratio_distributed_vs_none", distributed / undistributed)
    common.emit("assigned_spread", max(per_agent) - min(per_agent))
    common.emit("double_or_missed", abs(sum(per_agent) - count) + unassigned)


if __name__ == "__main__":
    main()
