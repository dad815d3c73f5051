/*
 * dashboard_assets — the dashboard's files, compiled into the binary.
 *
 * dashboard_assets.c is generated from controller/web/dashboard/ by
 * controller/web/dashboard/embed.sh (the Makefile reruns it when a file there
 * changes; tests/unit/test_httpd.c fails when the two disagree), so the
 * controller serves its page without reading the filesystem, which is
 * read-only in the pod anyway.
 */
#ifndef KVR_DASHBOARD_ASSETS_H
#define KVR_DASHBOARD_ASSETS_H

#include <stddef.h>

struct dashboard_asset {
    const char *path;         /* URL path, e.g. "/app.js"; the page is "/index.html" */
    const char *content_type; /* Content-Type to serve it with */
    const char *data;         /* the file's bytes, NUL-terminated */
    size_t len;               /* bytes, not counting the terminator */
};

/* Every embedded file, in the order embed.sh was given them. */
extern const struct dashboard_asset dashboard_assets[];
extern const size_t dashboard_nassets;

#endif
