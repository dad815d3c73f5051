/*
 * wq_test — for unit tests only: whether a queue has been shut down (the
 * workers learn it from wq_get()). Only wq.c and tests include this header
 * (make lint checks).
 */
#ifndef KVR_WQ_TEST_H
#define KVR_WQ_TEST_H

#include "reconcile/wq.h"

/** Whether the queue has been shut down. */
int wq_shutting_down(struct wq *q);

#endif
