/*
 * httpd_test — for tests only: which ports a server started on port 0 got
 * (the controller logs them in {"msg":"http listening"} and {"msg":"probes
 * listening"} instead). Only httpd.c and tests include this header (make
 * lint checks).
 */
#ifndef KVR_HTTPD_TEST_H
#define KVR_HTTPD_TEST_H

#include "web/httpd.h"

/** The TCP port the main listener listens on (the chosen one when
 *  cfg->port was 0); -1 for NULL or without a main listener. */
int httpd_port(const struct httpd *h);

/** The probe listener's port; -1 for NULL or without one. */
int httpd_probe_port(const struct httpd *h);

#endif
