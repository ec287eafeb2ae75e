"""A small HTTP/1.1 keep-alive load generator for the benches (asyncio streams on uvloop):
`concurrency` connections, each sending its next request as soon as the answer is read. Cheap
on CPU, so on this 2-core machine the servers get most of it."""

import asyncio
import time


def request_bytes(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, body
            body += await reader.readexactly(size + 2)
    return status, await reader.readexactly(length)


async def run(port: int, requests, concurrency: int, duration: float | None = None) -> dict:
    """Send `requests` (an iterator of raw request bytes) until it runs out or `duration`
    seconds pass. Returns ok (2xx), errors by kind, latencies (s), elapsed (s)."""
    iterator = iter(requests)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    statuses: dict[int, int] = {}
    started = time.monotonic()
    stop_at = started + duration if duration else None

    async def connection():
        reader = writer = None
        while True:
            if stop_at and time.monotonic() >= stop_at:
                break
            try:
                raw = next(iterator)
            except StopIteration:
                break
            for _attempt in range(2):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    sent = time.monotonic()
                    writer.write(raw)
                    status, _ = await asyncio.wait_for(_read_response(reader), 120)
                    latencies.append(time.monotonic() - sent)
                    statuses[status] = statuses.get(status, 0) + 1
                    if not 200 <= status < 300:
                        errors[f"http_{status}"] = errors.get(f"http_{status}", 0) + 1
                    break
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                    # A keep-alive connection closed by the server between requests: reconnect
                    # once; a second failure counts.
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if _attempt == 1:
                        kind = type(exc).__name__
                        errors[kind] = errors.get(kind, 0) + 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return {
        "ok": sum(n for s, n in statuses.items() if 200 <= s < 300),
        "errors": errors,
        "latencies": latencies,
        "elapsed": time.monotonic() - started,
    }


def run_sync(port, requests, concurrency, duration=None) -> dict:
    try:
        import uvloop

        return uvloop.run(run(port, requests, concurrency, duration))
    except ImportError:
        return asyncio.run(run(port, requests, concurrency, duration))
