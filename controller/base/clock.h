/*
 * clock — the one clock: wall time, monotonic time, deadlines, and RFC 3339
 * text both ways.
 *
 * Every other file asks this one for the time, so that a unit test can set
 * and move it (clock_test.h) and every timestamp we write (a log line's
 * "ts", a replacement's decided-at, an Event's, a Lease's MicroTime) is
 * formatted in one place. Wall time is for what people and the API server
 * read; monotonic time is for what is measured (grace periods, expiry,
 * backoff, latency), since the wall clock can jump.
 *
 * Condition-variable waits are the one exception: clock_cond_init() and
 * clock_deadline() always use the system's CLOCK_MONOTONIC, which the kernel
 * times the wait on, even while a test has set the time. A test that moves
 * time therefore checks what the code decided (a key became due, a requeue
 * delay), not how long a blocked thread slept.
 */
#ifndef KVR_CLOCK_H
#define KVR_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Room for every text clock_format() and clock_format_ts() write, with
 * the terminator ("2024-05-01T12:00:00.123456Z" is 27 characters). */
#define CLOCK_TEXT_LEN 32

/** Wall-clock time (CLOCK_REALTIME, or the time a test set), epoch seconds. */
double clock_wall(void);

/** clock_wall() with its nanoseconds, for timestamps with a fraction. */
void clock_wall_ts(struct timespec *ts);

/** Monotonic time (CLOCK_MONOTONIC, or the time a test set), seconds since
 *  an unspecified start. */
double clock_mono(void);

/** clock_mono() in whole milliseconds. */
long clock_mono_ms(void);

/** clock_mono() in nanoseconds. */
uint64_t clock_mono_ns(void);

/** Sleeps ms milliseconds of real time (resumed after a signal). */
void clock_sleep_ms(unsigned ms);

/** Initialises c to time its waits on the system's CLOCK_MONOTONIC, so that
 *  a wall-clock jump neither stretches nor cuts short a sleep. Destroy it
 *  with pthread_cond_destroy(). */
void clock_cond_init(pthread_cond_t *c);

/** *t = the system's CLOCK_MONOTONIC now plus ms (ms >= 0): the deadline
 *  for pthread_cond_timedwait() on a condition variable made by
 *  clock_cond_init(). Not affected by a time a test set. */
void clock_deadline(struct timespec *t, long ms);

/** clock_deadline() with a delay in nanoseconds. */
void clock_deadline_ns(struct timespec *t, uint64_t ns);

/** Formats epoch seconds t (its fraction dropped) as RFC 3339 UTC,
 *  "2026-11-25T19:20:00Z", into out. */
void clock_format(double t, char out[CLOCK_TEXT_LEN]);

/** Formats *t as RFC 3339 UTC with digits fractional digits (3 or 6):
 *  "2024-05-01T12:00:00.123Z" (log lines) or "2024-05-01T12:00:00.123456Z"
 *  (a Kubernetes MicroTime, which the API server wants with exactly six),
 *  into out. The fraction is cut, not rounded. */
void clock_format_ts(const struct timespec *t, int digits, char out[CLOCK_TEXT_LEN]);

/** Parses RFC 3339 UTC text ("2024-05-01T12:00:00Z", any fraction, 'T' and
 *  'Z' in either case) into epoch seconds. Returns 0, or -EINVAL for NULL,
 *  another form or an offset other than Z. */
int clock_parse(const char *s, double *out);

#endif
