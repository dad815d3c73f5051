/*
 * metrics_test — for unit tests only: an empty registry between tests. Only
 * metrics.c and tests include this header (make lint checks).
 */
#ifndef KVR_METRICS_TEST_H
#define KVR_METRICS_TEST_H

/** Forgets every series and collector. */
void metrics_reset(void);

#endif
