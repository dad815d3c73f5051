/*
 * httpd_test — for tests only: which port a server started on port 0 got
 * (the controller logs it in {"msg":"http listening"} instead). Only
 * httpd.c and tests include this header (make lint checks).
 */
#ifndef KVR_HTTPD_TEST_H
#define KVR_HTTPD_TEST_H

#include "web/httpd.h"

/** The TCP port the server listens on (the chosen one when cfg->port was
 *  0); -1 for NULL. */
int httpd_port(const struct httpd *h);

#endif
