// {{name}}: a wisp function in JavaScript (a wasi:http component built with
// componentize-js). The standard fetch-event API, as in a service worker.

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  const name = url.searchParams.get('name') ?? 'world';
  return new Response(`Hello, ${name}, from {{name}}!\n`, {
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
}
