"""{{name}}: a wisp function in Python (a wasi:http component built with
componentize-py)."""

from urllib.parse import parse_qs

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        _, _, query = (request.path_with_query() or "/").partition("?")
        name = parse_qs(query).get("name", ["world"])[0]
        body = f"Hello, {name}, from {{name}}!\n".encode()

        response = OutgoingResponse(Fields.from_list([("content-type", b"text/plain; charset=utf-8")]))
        response.set_status_code(200)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing.write()
        stream.blocking_write_and_flush(body)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing, None)
