/* {{name}}: a wisp function in C, run CGI-style (WASI preview1).
 *
 * The request arrives as CGI meta-variables in the environment
 * (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_LENGTH, HTTP_*...) and the
 * body on stdin. The response is written to stdout: headers, a blank line,
 * then the body. `Status: 404 Not Found` sets the status. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *path = getenv("PATH_INFO");
    const char *query = getenv("QUERY_STRING");
    const char *length = getenv("CONTENT_LENGTH");
    long body_bytes = length ? strtol(length, NULL, 10) : 0;

    printf("Content-Type: text/plain\r\n\r\n");
    printf("Hello from {{name}} (C)!\n");
    printf("method=%s path=%s query=%s body_bytes=%ld\n",
           method ? method : "", path ? path : "", query ? query : "", body_bytes);
    return 0;
}
