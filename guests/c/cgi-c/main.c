/* cgi-c: a CGI function in C (WASI preview1, clang + wasi-libc).
 *
 * Reads the query string from QUERY_STRING and a POST body of CONTENT_LENGTH
 * bytes from stdin, and answers with a plain-text CGI response that reports
 * both. A `name=` query parameter personalises the greeting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (1024 * 1024)

/* Copies the value of `key` in a query string `q` into `out` (at most
 * `cap - 1` bytes); returns 1 when the key is present. */
static int query_param(const char *q, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len > klen && strncmp(q, key, klen) == 0 && q[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen >= cap) vlen = cap - 1;
            memcpy(out, q + klen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        q = end ? end + 1 : NULL;
    }
    return 0;
}

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    const char *length = getenv("CONTENT_LENGTH");
    char name[128] = "world";
    query_param(query, "name", name, sizeof name);

    size_t want = length ? (size_t)strtoul(length, NULL, 10) : 0;
    if (want > MAX_BODY) {
        printf("Status: 413 Payload Too Large\r\nContent-Type: text/plain\r\n\r\nbody too large\n");
        return 0;
    }
    char *body = malloc(want + 1);
    if (!body) return 1;
    size_t got = fread(body, 1, want, stdin);
    body[got] = '\0';

    printf("Content-Type: text/plain\r\nX-Written-In: C\r\n\r\n");
    printf("Hello, %s, from C!\n", name);
    printf("method=%s\nquery=%s\nbody_bytes=%zu\nbody=%s\n",
           method ? method : "", query ? query : "", got, body);
    free(body);
    return 0;
}
