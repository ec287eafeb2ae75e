"""A broadcast's status webhooks at Meta's pace: a Cloud number's broadcast to N recipients
(default 100,000), and Meta's three status webhooks for each ("sent", "delivered", "read"; one
status per delivery: 300,000 webhooks), signed, through nginx to the web tier as fast as it
accepts them (64 senders, no pause), while one worker (prefork, 2) drains the webhook inbox on
the same 2 cores. Does the backlog stay bounded, and is every status applied?

    .venv/bin/python bench/broadcast_statuses.py [--quick] [--recipients N] [--web W]

Figures: deliveries; accepted_per_s (the web tier, while the worker drains); drained_per_s
(deliveries ingested, from the first POST until the inbox is empty); backlog_peak (most
deliveries waiting at once, sampled every 0.5 s); backlog_oldest_peak_s (the oldest waiting
delivery's age at its worst: how far behind Meta the inbox fell; the issue's goal is "absorbed
without backlog growth beyond a few minutes"); absorbed_after_last_post_s (from the last
accepted webhook until the inbox is empty); recipients_read (every recipient must end `read`);
lost (recipients not `read`); http_errors.
"""

import threading

import _common as common
import webhooks
from webhooks import PHONE_NUMBER_ID, cloud_number, posted_while_draining, signed_request, waiting

DB_NAME = "switchboard_bench_broadcast_statuses"
REDIS_DB = 7
CHANNEL = "switchboard:events:bench:broadcast_statuses"
STATUSES = ("sent", "delivered", "read")


def prepare(recipients: int):
    """The number, a broadcast whose recipients were all sent (each with its wamid), and
    the signed webhook requests: every recipient's "sent", then "delivered", then "read"."""
    from channels_integrations.models import Broadcast, BroadcastRecipient

    number = cloud_number()
    broadcast = Broadcast.objects.create(
        company=number.company, number=number, name="Spring offer", text="Our spring offer",
        status=Broadcast.Status.SENDING,
    )  # fmt: skip
    batch = []
    for n in range(recipients):
        batch.append(
            BroadcastRecipient(
                broadcast=broadcast, phone=f"+49152{n:08d}", status="sent",
                provider_message_id=f"wamid.bc.{n}",
            )
        )  # fmt: skip
        if len(batch) == 5000:
            BroadcastRecipient.objects.bulk_create(batch)
            batch = []
    BroadcastRecipient.objects.bulk_create(batch)
    bodies = []
    for offset, status in enumerate(STATUSES):
        for n in range(recipients):
            value = {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
                "statuses": [{
                    "id": f"wamid.bc.{n}", "status": status,
                    "timestamp": str(1763900000 + 60 * offset), "recipient_id": f"49152{n:08d}",
                    "conversation": {"id": f"conv.{n}", "origin": {"type": "marketing"}},
                    "pricing": {"billable": True, "pricing_model": "CBP", "category": "marketing"},
                }],
            }  # fmt: skip
            bodies.append(signed_request(number, value))
    return broadcast, bodies


class BacklogSampler(threading.Thread):
    """The webhook inbox's backlog every `period` seconds, until stopped."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        self.period, self.peak, self.oldest_peak = period, 0, 0.0
        self.done = threading.Event()

    def run(self):
        from django.db import connection

        from webhook_inbox.services import backlog

        try:
            while not self.done.wait(self.period):
                now = backlog()
                self.peak = max(self.peak, now["waiting"])
                self.oldest_peak = max(self.oldest_peak, now["oldest_age_seconds"])
        finally:
            connection.close()


def main():
    args = common.parse_args(
        __doc__.splitlines()[0],
        recipients={"type": int, "default": None},
        web={"type": int, "default": 2},
    )
    recipients = args.recipients or (3000 if args.quick else 100_000)
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    common.flush_redis(env["REDIS_URL"])
    env["DB_POOL_MAX_SIZE"] = "8"
    common.note(f"preparing a broadcast to {recipients} recipients, {3 * recipients} webhooks")
    broadcast, bodies = prepare(recipients)
    webhooks.empty_inbox()

    common.note("webhooks in as fast as the web tier takes them, one worker draining")
    sampler = BacklogSampler()
    sampler.start()
    try:
        result, started, accepted_at, absorbed_at = posted_while_draining(
            env, args.web, bodies, webhooks.SENDERS, 1800
        )
    finally:
        sampler.done.set()
        sampler.join()
    read = broadcast.recipients.filter(status="read").count()

    common.emit("deliveries", len(bodies))
    common.emit("web_processes", args.web)
    common.emit("accepted_per_s", result["ok"] / (accepted_at - started))
    common.emit("drained_per_s", len(bodies) / (absorbed_at - started))
    common.emit("backlog_peak", sampler.peak)
    common.emit("backlog_oldest_peak_s", sampler.oldest_peak)
    common.emit("absorbed_after_last_post_s", absorbed_at - accepted_at)
    common.emit("backlog_left", waiting())
    common.emit("recipients_read", read)
    common.emit("lost", recipients - read)
    common.emit("http_errors", sum(result["errors"].values()))


if __name__ == "__main__":
    main()
