"""{{name}}: a wisp function in Python (a wasi:http component built with
componentize-py).

`GET /` answers a greeting; `GET /visits` counts visits in the function's
own key-value bucket (`wasi:keyvalue`): every request runs in a fresh
instance, so what must last goes in a bucket."""

from urllib.parse import parse_qs

from wit_world import exports
from wit_world.imports import atomics, store
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Err, Ok

# The header in which wisp passes the path after the function's route.
PATH_INFO_HEADER = "x-wisp-path-info"


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path, _, query = (request.path_with_query() or "/").partition("?")
        with request.headers() as headers:
            routed = headers.get(PATH_INFO_HEADER)
        if routed:
            path = routed[0].decode() or "/"
        if path == "/visits":
            status, body = visits()
        else:
            name = parse_qs(query).get("name", ["world"])[0]
            status, body = 200, f"Hello, {name}, from {{name}}!\n"
        respond(response_out, status, body.encode())


def visits() -> tuple[int, str]:
    """Adds one to the `visits` counter of the function's own bucket."""
    try:
        with store.open("") as bucket:
            count = atomics.increment(bucket, "visits", 1)
    except Err as e:
        return 500, f"key-value store: {describe(e.value)}\n"
    return 200, f"visits: {count}\n"


def describe(error: store.Error) -> str:
    if isinstance(error, store.Error_Other):
        return f"other: {error.value}"
    if isinstance(error, store.Error_AccessDenied):
        return "access-denied"
    return "no-such-store"


def respond(response_out: ResponseOutparam, status: int, body: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain; charset=utf-8")]))
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(response_out, Ok(response))
    stream = outgoing.write()
    stream.blocking_write_and_flush(body)
    stream.__exit__(None, None, None)
    OutgoingBody.finish(outgoing, None)
