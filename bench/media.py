"""Files through the reply API to the WhatsApp Cloud API's far end (tests.far_end.GraphFake, on
loopback in this process): upload throughput against a plain httpx upload of the same bytes,
and the sender's memory while it sends.

    .venv/bin/python bench/media.py [--quick]

GOALS: upload_ratio_vs_httpx >= 0.8; peak_rss_growth_mb does not grow with the file's size
(files are streamed: Django's upload handlers spool to disk, storage saves chunk by chunk,
httpx reads the stored file object in chunks).

Setup: its own PostgreSQL database (switchboard_bench_media), Redis database 12, a temporary
MEDIA_ROOT, one daphne (the API), one Cloud API number and conversation. The send itself is
the deliver task's code (messaging.tasks.deliver_message.run), run in this process so its
memory can be sampled (/proc/self/statm every 2 ms).

The run:
  1. a 10 MB file (sent as a PDF document: WhatsApp images stop at 5 MB) POSTed to
     /api/v1/conversations/{id}/messages/files/ (multipart, streamed from disk by httpx), then
     delivered: upload to POST /{phone-number-id}/media, then the message. Timed 3 times
     (median); the same bytes uploaded by a plain `httpx.post(files=...)` to the same endpoint
     3 times (median), from one httpx.Client created beforehand (as ours is: one pooled client
     per process). upload_ratio_vs_httpx = httpx time / our upload step's time (1.0: as
     fast); deliver_ratio_vs_httpx the same against the whole delivery (which also reads the
     row, claims it, records the send, posts the message and settles the row).
  2. the same for a 50 MB file (--quick: 25 MB): peak RSS growth during each delivery.
  3. a burst of 200 files (--quick: 50) of 100 KB, each its own reply, POSTed by 4 threads,
     then delivered one after another.

Figures (stdout, `name: value`):
  api_post_10mb_s, deliver_10mb_s (the whole delivery), upload_step_10mb_s (its media upload
  alone: cloud.upload_media, timed by a wrapper), httpx_upload_10mb_s,
  upload_ratio_vs_httpx (httpx / our upload step), deliver_ratio_vs_httpx (httpx / the whole
  delivery),
  peak_rss_growth_mb_10mb, peak_rss_growth_mb_<N>mb, burst_files, burst_api_s,
  burst_api_files_per_s, burst_deliver_s, burst_deliver_files_per_s, burst_sent,
  uploads_verified (every upload the far end recorded has the size we sent)
"""

import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common  # noqa: E402

DB_NAME = "switchboard_bench_media"
REDIS_DB = 12
CHANNEL = "bench-media"
MB = 1024 * 1024


class RssSampler:
    """The resident memory of this process, sampled every 2 ms while active."""

    def __init__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    def rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self.page

    def __enter__(self):
        self.base = self.rss()
        self.peak = self.base
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MB


def make_file(folder: str, name: str, size: int) -> str:
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        block = os.urandom(MB)
        for _ in range(size // MB):
            handle.write(block)
        handle.write(os.urandom(size % MB))
    return path


def main():  # noqa: PLR0915 (one straight script)
    args = common.parse_args(__doc__.splitlines()[0])
    from tests.far_end import GraphFake

    fake = GraphFake().start()
    media_root = tempfile.mkdtemp(prefix="bench-media-")
    os.environ.update(
        {
            "WHATSAPP_GRAPH_URL": fake.url,
            "MEDIA_ROOT": media_root,
            "WHATSAPP_SEND_RATE_PER_MINUTE": "1000000",
        }
    )
    env = common.setup_django(DB_NAME, REDIS_DB, CHANNEL)
    import httpx
    from django.db import connection

    from accounts.models import ApiToken
    from channels_integrations.models import WhatsAppNumber
    from crm.models import Client
    from messaging.models import Message
    from messaging.tasks import deliver_message
    from tests.factories import CompanyFactory, ConversationFactory, UserFactory

    common.truncate_tenants()
    common.flush_redis(env["REDIS_URL"])
    company = CompanyFactory(name="Bench media")
    user = UserFactory(company=company, username="bench-media-agent")
    number = WhatsAppNumber.objects.create(
        company=company,
        phone="+4917000999001",
        display_name="Bench line",
        provider=WhatsAppNumber.Provider.CLOUD,
        cloud_phone_number_id="106500000001",
        cloud_access_token="EAAG-bench-token",
        cloud_app_secret="bench-secret",
        cloud_verify_token="bench-verify",
    )
    client_row = Client.objects.create(company=company, name="Maria", phone="+4915112345678")
    # The factory's client wrote just now: the 24-hour window is open, so files may go out
    # without a template (WhatsApp Cloud's rule; the API refuses them otherwise).
    conversation = ConversationFactory(
        company=company, source=number, external_thread_id="4915112345678", client=client_row
    )
    _, token = ApiToken.issue(user, "bench")
    connection.close()

    port = common.free_port()
    daphne = common.start_daphne(env, port)
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/api/v1/conversations/{conversation.pk}/messages/files/"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    folder = tempfile.mkdtemp(prefix="bench-media-files-")
    api = httpx.Client(headers=headers, timeout=300)

    def post(path: str, name: str, content_type: str) -> int:
        with open(path, "rb") as handle:
            response = api.post(url, files={"files": (name, handle, content_type)})
        if response.status_code != 201:
            raise RuntimeError(f"API answered {response.status_code}: {response.text[:300]}")
        return response.json()["id"]

    from channels_integrations.whatsapp import cloud

    upload_times = []
    original_upload = cloud.upload_media

    def timed_upload(*args, **kwargs):  # instrumentation only: the real upload, timed
        started = time.perf_counter()
        try:
            return original_upload(*args, **kwargs)
        finally:
            upload_times.append(time.perf_counter() - started)

    cloud.upload_media = timed_upload
    cloud.http()  # the process's pooled client exists before the clock starts

    def deliver(message_id: int) -> tuple[float, float]:
        with RssSampler() as sampler:
            started = time.perf_counter()
            deliver_message.run(message_id)
            elapsed = time.perf_counter() - started
        status = Message.objects.get(pk=message_id).status
        if status != "sent":
            raise RuntimeError(f"message {message_id} ended {status}")
        return elapsed, sampler.growth_mb

    plain_client = httpx.Client()  # created once, like ours (not timed)

    def plain_httpx(path: str) -> float:
        started = time.perf_counter()
        with open(path, "rb") as handle:
            response = plain_client.post(
                f"{fake.url}/106500000001/media",
                data={"messaging_product": "whatsapp", "type": "application/pdf"},
                files={"file": ("plain.pdf", handle, "application/pdf")},
                headers={"Authorization": "Bearer EAAG-bench-token"},
                timeout=300,
            )
        response.raise_for_status()
        return time.perf_counter() - started

    try:
        ten = make_file(folder, "ten.pdf", 10 * MB)
        ours, plain, posts, growth_10 = [], [], [], []
        upload_times.clear()
        for _ in range(3):
            started = time.perf_counter()
            message_id = post(ten, "ten.pdf", "application/pdf")
            posts.append(time.perf_counter() - started)
            elapsed, growth = deliver(message_id)
            ours.append(elapsed)
            growth_10.append(growth)
            plain.append(plain_httpx(ten))
        common.emit("api_post_10mb_s", statistics.median(posts))
        common.emit("deliver_10mb_s", statistics.median(ours))
        common.emit("upload_step_10mb_s", statistics.median(upload_times))
        common.emit("httpx_upload_10mb_s", statistics.median(plain))
        common.emit(
            "upload_ratio_vs_httpx", statistics.median(plain) / statistics.median(upload_times)
        )
        common.emit("deliver_ratio_vs_httpx", statistics.median(plain) / statistics.median(ours))
        common.emit("peak_rss_growth_mb_10mb", max(growth_10))

        big_mb = 25 if args.quick else 50
        big = make_file(folder, "big.pdf", big_mb * MB)
        message_id = post(big, "big.pdf", "application/pdf")
        _elapsed, growth_big = deliver(message_id)
        common.emit(f"peak_rss_growth_mb_{big_mb}mb", growth_big)
        os.remove(big)

        burst = 50 if args.quick else 200
        small = make_file(folder, "small.pdf", 100 * 1024)
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            ids = list(
                pool.map(lambda n: post(small, f"f{n}.pdf", "application/pdf"), range(burst))
            )
        api_s = time.perf_counter() - started
        connection.close()
        started = time.perf_counter()
        for message_id in ids:
            deliver_message.run(message_id)
        deliver_s = time.perf_counter() - started
        sent = Message.objects.filter(pk__in=ids, status="sent").count()
        common.emit("burst_files", burst)
        common.emit("burst_api_s", api_s)
        common.emit("burst_api_files_per_s", burst / api_s)
        common.emit("burst_deliver_s", deliver_s)
        common.emit("burst_deliver_files_per_s", burst / deliver_s)
        common.emit("burst_sent", sent)
        sizes = {10 * MB, big_mb * MB, 100 * 1024}
        common.emit(
            "uploads_verified",
            str(all(upload.size in sizes for upload in fake.uploads)).lower(),
        )
    finally:
        api.close()
        common.stop(daphne)
        fake.stop()


if __name__ == "__main__":
    main()
