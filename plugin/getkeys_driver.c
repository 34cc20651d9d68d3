/* A stand-in for the emulator thread, for `kartstudio bench plugin` and the plugin tests.
 *
 * It calls the plugin's GetKeys through the function pointer the core would use, on a steady
 * schedule, and times every call with CLOCK_MONOTONIC: timing from Python would mostly measure
 * ctypes. Not part of the plugin; mupen64plus never loads it.
 */
#include <sched.h>
#include <stdint.h>
#include <time.h>

typedef void (*getkeys_fn)(int control, uint32_t *keys);

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs `rounds` polls; each round calls GetKeys for every controller in `mask` (bit 0 =
 * controller 1, called with Control 0, as the core numbers them), then waits until `interval_ns`
 * after the round began (spinning with sched_yield when interval_ns < 200 us, sleeping otherwise).
 * Writes per call: durations_ns (time inside GetKeys), buttons (what it returned) and, if
 * returned_ns is not NULL, the CLOCK_MONOTONIC time it returned.
 * Returns the number of calls made. */
__attribute__((visibility("default"))) int ks_drive_getkeys(getkeys_fn getkeys, int mask, int rounds,
                                                           uint64_t interval_ns, uint64_t *durations_ns,
                                                           uint32_t *buttons, uint64_t *returned_ns) {
    int calls = 0;
    for (int r = 0; r < rounds; r++) {
        uint64_t start = now_ns();
        for (int c = 0; c < 4; c++) {
            if (!(mask & (1 << c)))
                continue;
            uint32_t keys = 0;
            uint64_t t0 = now_ns();
            getkeys(c, &keys);
            uint64_t t1 = now_ns();
            durations_ns[calls] = t1 - t0;
            buttons[calls] = keys;
            if (returned_ns)
                returned_ns[calls] = t1;
            calls++;
        }
        uint64_t until = start + interval_ns;
        if (interval_ns >= 200000) {
            uint64_t left = until > now_ns() ? until - now_ns() : 0;
            struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u), .tv_nsec = (long)(left % 1000000000u)};
            nanosleep(&ts, NULL);
        } else {
            while (now_ns() < until)
                sched_yield(); /* spin, but let the plugin's I/O thread have this core when it wakes */
        }
    }
    return calls;
}
