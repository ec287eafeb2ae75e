"""The bare ASGI endpoint the benches compare with: reads the body, answers 200 with a small
JSON body; no Django. Served by the same uvicorn command and nginx file as the product."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": b'{"accepted": true}'})
