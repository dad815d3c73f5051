/*
 * clock_test — for unit tests only: set and move the time clock.h answers.
 *
 * While a test time is set, clock_wall*() and clock_mono*() return it in
 * every thread; clock_deadline() and clock_cond_init() keep using the
 * system's clock (see clock.h). Only clock.c and tests include this header
 * (make lint checks).
 */
#ifndef KVR_CLOCK_TEST_H
#define KVR_CLOCK_TEST_H

/** From now on the wall clock reads wall and the monotonic clock mono
 *  (seconds, >= 0), until clock__real(). */
void clock__set(double wall, double mono);

/** Moves both set clocks forward by seconds (>= 0). Nothing happens while
 *  no time is set. */
void clock__advance(double seconds);

/** Back to the system's clocks. */
void clock__real(void);

#endif
