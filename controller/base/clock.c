/*
 * clock — wall and monotonic time, deadlines, RFC 3339. See clock.h.
 *
 * The only file that reads the system's clocks or formats a time. A time set
 * by a test (clock_test.h) lives in atomics, so that every thread sees it
 * without a lock; the real clocks cost one flag load more.
 */
#include "base/clock.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/clock_test.h"

#define CLOCK__NS_PER_S 1000000000LL

static atomic_bool clock__fake;       /* a test set the time */
static atomic_llong clock__fake_wall; /* that wall time, ns since the epoch */
static atomic_llong clock__fake_mono; /* that monotonic time, ns */

static void clock__from_ns(long long ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / CLOCK__NS_PER_S);
    ts->tv_nsec = (long)(ns % CLOCK__NS_PER_S);
}

static void clock__mono_ts(struct timespec *ts)
{
    if (atomic_load(&clock__fake))
        clock__from_ns(atomic_load(&clock__fake_mono), ts);
    else
        clock_gettime(CLOCK_MONOTONIC, ts);
}

void clock_wall_ts(struct timespec *ts)
{
    if (atomic_load(&clock__fake))
        clock__from_ns(atomic_load(&clock__fake_wall), ts);
    else
        clock_gettime(CLOCK_REALTIME, ts);
}

double clock_wall(void)
{
    struct timespec ts;

    clock_wall_ts(&ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double clock_mono(void)
{
    struct timespec ts;

    clock__mono_ts(&ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

long clock_mono_ms(void)
{
    struct timespec ts;

    clock__mono_ts(&ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t clock_mono_ns(void)
{
    struct timespec ts;

    clock__mono_ts(&ts);
    return (uint64_t)ts.tv_sec * (uint64_t)CLOCK__NS_PER_S + (uint64_t)ts.tv_nsec;
}

void clock_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void clock_cond_init(pthread_cond_t *c)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(c, &ca);
    pthread_condattr_destroy(&ca);
}

void clock_deadline_ns(struct timespec *t, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += (time_t)(ns / (uint64_t)CLOCK__NS_PER_S);
    t->tv_nsec += (long)(ns % (uint64_t)CLOCK__NS_PER_S);
    if (t->tv_nsec >= CLOCK__NS_PER_S) {
        t->tv_sec++;
        t->tv_nsec -= CLOCK__NS_PER_S;
    }
}

void clock_deadline(struct timespec *t, long ms)
{
    clock_deadline_ns(t, ms > 0 ? (uint64_t)ms * 1000000u : 0);
}

/* ---- RFC 3339 ---------------------------------------------------------- */

void clock_format_ts(const struct timespec *t, int digits, char out[CLOCK_TEXT_LEN])
{
    struct tm tm = {0};
    long frac = t->tv_nsec;
    size_t n;

    gmtime_r(&t->tv_sec, &tm);
    /* Leave room for the longest fraction, ".123456789Z". */
    n = strftime(out, CLOCK_TEXT_LEN - 11, "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits <= 0) {
        snprintf(out + n, CLOCK_TEXT_LEN - n, "Z");
        return;
    }
    if (digits > 9)
        digits = 9;
    for (int i = digits; i < 9; i++)
        frac /= 10;
    snprintf(out + n, CLOCK_TEXT_LEN - n, ".%0*ldZ", digits, frac);
}

void clock_format(double t, char out[CLOCK_TEXT_LEN])
{
    struct timespec ts = {.tv_sec = (time_t)t, .tv_nsec = 0};

    clock_format_ts(&ts, 0, out);
}

static int clock__days_from_civil(int y, int m, int d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 without timegm(). */
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int clock__digits(const char **p, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return -EINVAL;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int clock_parse(const char *s, double *out)
{
    int y, mo, d, h, mi, se;
    double frac = 0, scale = 0.1;

    if (!s || clock__digits(&s, 4, &y) || *s++ != '-' || clock__digits(&s, 2, &mo) || *s++ != '-' ||
        clock__digits(&s, 2, &d) || (*s != 'T' && *s != 't'))
        return -EINVAL;
    s++;
    if (clock__digits(&s, 2, &h) || *s++ != ':' || clock__digits(&s, 2, &mi) || *s++ != ':' ||
        clock__digits(&s, 2, &se))
        return -EINVAL;
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
            frac += (*s - '0') * scale;
    }
    if ((*s != 'Z' && *s != 'z') || s[1] || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || se > 60)
        return -EINVAL;
    *out = (double)clock__days_from_civil(y, mo, d) * 86400.0 + h * 3600.0 + mi * 60.0 + se + frac;
    return 0;
}

/* ---- for tests (clock_test.h) ------------------------------------------ */

void clock__set(double wall, double mono)
{
    atomic_store(&clock__fake_wall, (long long)(wall * 1e9));
    atomic_store(&clock__fake_mono, (long long)(mono * 1e9));
    atomic_store(&clock__fake, true);
}

void clock__advance(double seconds)
{
    long long ns = (long long)(seconds * 1e9);

    atomic_fetch_add(&clock__fake_wall, ns);
    atomic_fetch_add(&clock__fake_mono, ns);
}

void clock__real(void)
{
    atomic_store(&clock__fake, false);
}
