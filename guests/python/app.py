"""A wasi:http function in Python, built with componentize-py.

It answers every request with JSON describing it: method, path, query,
and the request body, and a greeting from the GREETING setting.
"""

import json
import os

from wit_world import exports
from wit_world.imports.types import (
    Fields,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)
from componentize_py_types import Ok


def method_name(method) -> str:
    name = type(method).__name__
    if name == "Method_Other":
        return method.value
    return name.removeprefix("Method_").upper()


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    stream = body.stream()
    data = b""
    while True:
        try:
            data += stream.blocking_read(65536)
        except Exception:
            break
    stream.__exit__(None, None, None)
    body.__exit__(None, None, None)
    return data


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = method_name(request.method())
        target = request.path_with_query() or "/"
        path, _, query = target.partition("?")
        body = read_body(request)
        reply = json.dumps(
            {
                "hello": os.environ.get("GREETING", "Hello") + " from Python",
                "method": method,
                "path": path,
                "query": query,
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        headers = Fields.from_list([("content-type", b"application/json")])
        response = OutgoingResponse(headers)
        response.set_status_code(200)
        outgoing = response.body()
        ResponseOutparam.set(response_out, Ok(response))
        stream = outgoing.write()
        stream.blocking_write_and_flush(reply)
        stream.__exit__(None, None, None)
        OutgoingBody.finish(outgoing, None)
