/*
 * dashboard_stub — the controller's HTTP server without the controller, for
 * tests/e2e/test_dashboard.sh: it serves the embedded dashboard on
 * 127.0.0.1:PORT (0 = any) and publishes each file whose path it reads on
 * stdin, one a line, as the state. Prints "port N" once listening; exits on
 * EOF or "quit". Lets the browser test feed the page states the real
 * controller cannot produce (hostile strings, empty pools).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "web/httpd.h"
#include "web/httpd_test.h"

int main(int argc, char **argv)
{
    struct httpd_config cfg = {.addr = "127.0.0.1"};
    struct httpd *h = NULL;
    char line[4096], *end = NULL, *err = NULL;
    long port = argc > 1 ? strtol(argv[1], &end, 10) : 0;
    int rc;

    if (argc > 1 && (*end != '\0' || port < 0 || port > 65535)) {
        fprintf(stderr, "usage: dashboard_stub [PORT]\n");
        return 2;
    }
    cfg.port = (int)port;
    rc = httpd_start(&cfg, &h, &err);
    if (rc != 0) {
        fprintf(stderr, "dashboard_stub: %s\n", err ? err : strerror(-rc));
        free(err);
        return 1;
    }
    printf("port %d\n", httpd_port(h));
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        struct buf b = {0};
        line[strcspn(line, "\r\n")] = '\0';
        if (strcmp(line, "quit") == 0)
            break;
        rc = buf_read_file(&b, line, 1 << 24);
        if (rc != 0) {
            fprintf(stderr, "dashboard_stub: %s: %s\n", line, strerror(-rc));
            buf_free(&b);
            continue;
        }
        httpd_publish(h, buf_steal(&b));
        printf("published %s\n", line);
        fflush(stdout);
    }
    httpd_stop(h);
    return 0;
}
