/*
 * Unit tests for the clock: RFC 3339 read and written the ways the API
 * server, the log and a Lease's MicroTime need, and a time a test sets and
 * moves (clock_test.h), which every reader sees until it is given back.
 */
#include <errno.h>
#include <time.h>

#include "base/clock.h"
#include "base/clock_test.h"
#include "harness.h"

TEST(parse_time_reads_rfc3339_utc)
{
    double t;

    CHECK_INT(clock_parse("1970-01-01T00:00:00Z", &t), 0);
    CHECK_NEAR(t, 0, 1e-9);
    CHECK_INT(clock_parse("2026-11-25T19:30:00Z", &t), 0);
    CHECK_NEAR(t, 1795635000.0, 1e-6);
    CHECK_INT(clock_parse("2026-11-25T19:30:00.250000Z", &t), 0);
    CHECK_NEAR(t, 1795635000.25, 1e-6);
    CHECK_INT(clock_parse("2026-11-25 19:30:00Z", &t), -EINVAL);
    CHECK_INT(clock_parse("2026-11-25T19:30:00+01:00", &t), -EINVAL);
    CHECK_INT(clock_parse("2026-13-25T19:30:00Z", &t), -EINVAL);
    CHECK_INT(clock_parse(NULL, &t), -EINVAL);
}

TEST(format_writes_a_lease_microtime)
{
    struct timespec t = {1714564800, 123456789};
    char out[32];

    clock_format_ts(&t, 6, out);
    CHECK_STR(out, "2024-05-01T12:00:00.123456Z");
    t.tv_sec = 0;
    t.tv_nsec = 0;
    clock_format_ts(&t, 6, out);
    CHECK_STR(out, "1970-01-01T00:00:00.000000Z");
}

TEST(format_writes_seconds_and_milliseconds_cut_not_rounded)
{
    struct timespec t = {1795635000, 999999999};
    char out[CLOCK_TEXT_LEN];

    clock_format(1795635000.9, out); /* a decided-at, an Event's time */
    CHECK_STR(out, "2026-11-25T19:30:00Z");
    clock_format_ts(&t, 3, out); /* a log line's "ts" */
    CHECK_STR(out, "2026-11-25T19:30:00.999Z");
    clock_format_ts(&t, 0, out);
    CHECK_STR(out, "2026-11-25T19:30:00Z");
}

TEST(formatted_time_reads_back)
{
    char out[CLOCK_TEXT_LEN];
    double t;

    clock_format(1714564800.0, out);
    CHECK_INT(clock_parse(out, &t), 0);
    CHECK_NEAR(t, 1714564800.0, 1e-9);
}

TEST(a_set_time_is_what_every_reader_sees_until_it_is_given_back)
{
    struct timespec ts;
    double wall, mono;

    clock__set(1795635000.5, 1000.25);
    CHECK_NEAR(clock_wall(), 1795635000.5, 1e-6);
    clock_wall_ts(&ts);
    CHECK_INT(ts.tv_sec, 1795635000);
    CHECK_NEAR(clock_mono(), 1000.25, 1e-9);
    CHECK_INT(clock_mono_ms(), 1000250);
    CHECK_INT(clock_mono_ns(), 1000250000000LL);
    clock__advance(59.75);
    CHECK_NEAR(clock_wall(), 1795635060.25, 1e-6);
    CHECK_INT(clock_mono_ms(), 1060000);
    clock__real();
    /* the system's clocks again: now, not 2026 or 1000 s after boot */
    wall = clock_wall();
    mono = clock_mono();
    CHECK(wall != 1795635060.25 && wall > 1.7e9);
    CHECK(mono != 1060.0);
    clock__advance(10); /* ignored while no time is set */
    CHECK(clock_wall() - wall < 5);
}

TEST(deadline_is_on_the_system_clock_even_while_a_time_is_set)
{
    struct timespec now, t;

    clock__set(0, 0);
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_deadline(&t, 1500);
    clock__real();
    CHECK(t.tv_sec >= now.tv_sec + 1);
    CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000L);
}
