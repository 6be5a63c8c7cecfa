// A wasi:http function in JavaScript, built with componentize-js
// (StarlingMonkey): the standard fetch-event API, as in a service worker.
//
// It answers every request with JSON describing it: method, path, query and
// the request body.

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  const body = await request.text();
  const reply = {
    hello: 'Hello from JavaScript',
    method: request.method,
    path: url.pathname,
    query: url.search.replace(/^\?/, ''),
    body,
  };
  return new Response(JSON.stringify(reply), {
    headers: { 'content-type': 'application/json' },
  });
}
