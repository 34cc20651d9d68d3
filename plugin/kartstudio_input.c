/* KartStudio input plugin for mupen64plus.
 *
 * KartStudio hands controller states to this plugin over a Unix domain socket (path from
 * KARTSTUDIO_SOCKET, per-launch token from KARTSTUDIO_TOKEN); the plugin hands them to the game
 * in GetKeys and reports every poll back. The protocol is in protocol.h and docs/plugin-protocol.md.
 *
 * Threads: the emulator thread calls GetKeys (the core calls it from one thread only, which the
 * poll-report ring relies on); one plugin thread does all socket I/O.
 * - free-run: GetKeys only loads one atomic word per controller and pushes a poll report into a
 *   single-producer ring; it makes no system call and never waits (the I/O thread flushes the
 *   ring every FLUSH_MS, and at once when KartStudio asks with KS_SYNC: waking another thread
 *   from GetKeys would cost more than the whole 5 us budget on a virtual machine).
 * - lock-step: GetKeys for the lock-step controller waits (bounded) on a condition variable for
 *   the next step, then installs that step's states for every controller.
 * - silence: in free-run, if nothing has been heard from KartStudio for silence_ms, GetKeys
 *   returns neutral (no stuck accelerator); a disconnect resets every controller to neutral.
 */
#define M64P_PLUGIN_PROTOTYPES 1
#include <m64p_common.h>
#include <m64p_plugin.h>
#include <m64p_types.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

#define PLUGIN_NAME "KartStudio input plugin"
#define PLUGIN_VERSION 0x000100
#define INPUT_PLUGIN_API_VERSION 0x020100

#define RING_SIZE 4096       /* poll reports waiting for the I/O thread; a power of two */
#define FLUSH_MS 2           /* how often the I/O thread sends queued poll reports in free-run */
#define MAX_PENDING 8        /* connections that have not sent their hello yet */
#define HELLO_TIMEOUT_MS 2000
#define MAX_REFUSAL_LOGS 10
#define MAX_MSGS_PER_WAKE 256 /* then flush reports and look at other connections before reading on */

/* One message the emulator thread queues for the I/O thread. */
typedef struct {
    uint8_t type; /* KS_POLL, KS_READY or KS_GAME_STATE */
    uint8_t controller;
    uint8_t source;
    uint32_t seq;
    uint32_t buttons;
    uint32_t state_seq;
    uint64_t t_ns;
    uint8_t len; /* KS_GAME_STATE: the game's bytes */
    uint8_t data[KS_GAME_STATE_MAX];
} report_t;

typedef struct {
    int fd;
    uint64_t deadline_ns;
} pending_t;

static struct {
    int started;
    void *debug_ctx;
    void (*debug_cb)(void *, int, const char *);

    int present[KS_MAX_CONTROLLERS];
    uint32_t present_mask;
    int lock_ctrl; /* 0-based: the controller whose GetKeys waits in lock-step */
    int state_ctrl; /* 0-based: the port whose raw joybus data is the game's state channel; -1 = none */
    uint32_t game_states; /* packets forwarded (emulator thread only) */
    uint64_t silence_ns;

    /* server */
    int serving;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t sock_dev;
    ino_t sock_ino;
    uint8_t token[KS_TOKEN_SIZE];
    int listen_fd, wake_fd, client_fd;
    pending_t pending[MAX_PENDING];
    int n_pending;
    int stats_pending; /* a stats request whose answer did not fit in the socket yet */
    int ack_pending;   /* likewise for a mode change's acknowledgement */
    uint32_t ack_seq;
    int sync_pending;  /* a KS_SYNC to answer once the ring is drained up to sync_head */
    uint32_t sync_seq, sync_head;
    pthread_t io_thread;
    atomic_int stop;

    /* what GetKeys reads: per controller (state_seq << 32) | buttons; state_seq 0 = none yet */
    _Atomic uint64_t word[KS_MAX_CONTROLLERS];
    atomic_int connected;
    _Atomic uint64_t last_rx_ns;
    atomic_int lockstep_on;
    atomic_int lock_timed_out;
    atomic_int quiet; /* KartStudio asked for no poll reports */

    /* lock-step hand-over, under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t lock_timeout_ms;
    int step_pending;
    uint32_t step_id, step_mask, step_buttons[KS_MAX_CONTROLLERS];
    uint32_t last_step_id;

    /* emulator thread only */
    uint32_t poll_count[KS_MAX_CONTROLLERS];
    uint64_t silence_counted_rx;

    /* poll reports: the emulator thread produces, the I/O thread consumes */
    report_t ring[RING_SIZE];
    _Atomic uint32_t ring_head, ring_tail;

    /* counters (the plugin's stats) */
    _Atomic uint64_t polls;
    atomic_uint msgs_ok, malformed, unauthenticated, neutral_silence, connections, lockstep_timeouts,
        steps, reports_dropped;
} P = {.listen_fd = -1, .wake_fd = -1, .client_fd = -1,
       .lock = PTHREAD_MUTEX_INITIALIZER};

static void logmsg(int level, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (P.debug_cb)
        P.debug_cb(P.debug_ctx, level, buf);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = v & 0xFF; p[1] = v >> 8; }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (v >> (8 * i)) & 0xFF; }
static void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (v >> (8 * i)) & 0xFF; }
static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void header(uint8_t *msg, uint16_t type, uint32_t seq) {
    memset(msg, 0, KS_MSG_SIZE);
    memcpy(msg, KS_MAGIC, 4);
    put_u16(msg + 4, KS_VERSION);
    put_u16(msg + 6, type);
    put_u32(msg + 8, seq);
}

static int all_zero(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

/* Constant-time comparison, so the token cannot be guessed byte by byte from timing. */
static int token_equal(const uint8_t *a, const uint8_t *b) {
    uint8_t diff = 0;
    for (int i = 0; i < KS_TOKEN_SIZE; i++) diff |= a[i] ^ b[i];
    return diff == 0;
}

/* ---------------------------------------------------------------- the emulator-thread side */

static void ring_push(const report_t *r) {
    uint32_t head = atomic_load_explicit(&P.ring_head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&P.ring_tail, memory_order_acquire);
    if (head - tail >= RING_SIZE) {
        atomic_fetch_add_explicit(&P.reports_dropped, 1, memory_order_relaxed);
        return;
    }
    P.ring[head & (RING_SIZE - 1)] = *r;
    atomic_store_explicit(&P.ring_head, head + 1, memory_order_release);
}

static void wake_io(void) {
    uint64_t one = 1;
    if (P.wake_fd >= 0 && write(P.wake_fd, &one, sizeof one) < 0) {
        /* the counter is already non-zero: the I/O thread is awake anyway */
    }
}

static void set_all_neutral(void) {
    for (int i = 0; i < KS_MAX_CONTROLLERS; i++) atomic_store(&P.word[i], 0);
}

/* Lock-step: wait (bounded) for the next step and install it. Called on the emulator thread. */
static void lockstep_wait(void) {
    pthread_mutex_lock(&P.lock);
    if (!P.step_pending) {
        report_t ready = {.type = KS_READY, .seq = P.last_step_id, .t_ns = now_ns()};
        ring_push(&ready);
        wake_io();
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += P.lock_timeout_ms / 1000;
        deadline.tv_nsec += (long)(P.lock_timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000L;
        }
        while (!P.step_pending && atomic_load(&P.lockstep_on) && atomic_load(&P.connected)) {
            if (pthread_cond_timedwait(&P.cond, &P.lock, &deadline) == ETIMEDOUT)
                break;
        }
    }
    if (P.step_pending) {
        for (int i = 0; i < KS_MAX_CONTROLLERS; i++)
            if (P.step_mask & (1u << i))
                atomic_store(&P.word[i], (uint64_t)P.step_id << 32 | P.step_buttons[i]);
        P.last_step_id = P.step_id;
        P.step_pending = 0;
        atomic_store(&P.lock_timed_out, 0);
        atomic_fetch_add(&P.steps, 1);
    } else if (atomic_load(&P.lockstep_on) && atomic_load(&P.connected)) {
        set_all_neutral();
        atomic_store(&P.lock_timed_out, 1);
        atomic_fetch_add(&P.lockstep_timeouts, 1);
    }
    pthread_mutex_unlock(&P.lock);
}

EXPORT void CALL GetKeys(int Control, BUTTONS *Keys) {
    if (Keys == NULL)
        return;
    Keys->Value = 0;
    if (Control < 0 || Control >= KS_MAX_CONTROLLERS)
        return;

    uint32_t buttons = 0, state_seq = 0;
    uint8_t source;
    int connected = atomic_load_explicit(&P.connected, memory_order_acquire);
    if (!connected) {
        source = KS_SRC_NO_CLIENT;
    } else if (atomic_load_explicit(&P.lockstep_on, memory_order_acquire)) {
        if (Control == P.lock_ctrl)
            lockstep_wait();
        source = atomic_load(&P.lock_timed_out) ? KS_SRC_LOCKSTEP_TIMEOUT : KS_SRC_STATE;
    } else {
        uint64_t last = atomic_load_explicit(&P.last_rx_ns, memory_order_acquire);
        source = KS_SRC_STATE;
        if (now_ns() - last > P.silence_ns) {
            source = KS_SRC_SILENCE;
            if (last != P.silence_counted_rx) { /* count each silent spell once */
                P.silence_counted_rx = last;
                atomic_fetch_add_explicit(&P.neutral_silence, 1, memory_order_relaxed);
            }
        }
    }
    if (source == KS_SRC_STATE) {
        uint64_t w = atomic_load_explicit(&P.word[Control], memory_order_acquire);
        state_seq = (uint32_t)(w >> 32);
        if (state_seq == 0)
            source = KS_SRC_NO_STATE_YET;
        else
            buttons = (uint32_t)w & KS_BUTTONS_VALID_MASK;
    }
    Keys->Value = buttons;

    uint32_t count = ++P.poll_count[Control];
    atomic_fetch_add_explicit(&P.polls, 1, memory_order_relaxed);
    if (connected && !atomic_load_explicit(&P.quiet, memory_order_relaxed)) {
        report_t r = {.type = KS_POLL, .controller = (uint8_t)(Control + 1), .source = source,
                      .seq = count, .buttons = buttons, .state_seq = state_seq, .t_ns = now_ns()};
        ring_push(&r);
    }
}

/* ---------------------------------------------------------------- the I/O thread */

static int send_msg(int fd, const uint8_t *msg) {
    ssize_t n = send(fd, msg, KS_MSG_SIZE, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n == KS_MSG_SIZE)
        return 0;
    return (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) ? 1 : -1;
}

static void disconnect_client(const char *why) {
    if (P.client_fd < 0)
        return;
    close(P.client_fd);
    P.client_fd = -1;
    P.stats_pending = P.ack_pending = P.sync_pending = 0;
    pthread_mutex_lock(&P.lock);
    atomic_store(&P.connected, 0);
    atomic_store(&P.lockstep_on, 0);
    atomic_store(&P.lock_timed_out, 0);
    atomic_store(&P.quiet, 0);
    P.step_pending = 0;
    set_all_neutral();
    pthread_cond_broadcast(&P.cond);
    pthread_mutex_unlock(&P.lock);
    logmsg(M64MSG_INFO, "KartStudio disconnected (%s): every controller is neutral", why);
}

static void refuse(int fd, const char *why) {
    unsigned n = atomic_fetch_add(&P.unauthenticated, 1) + 1;
    if (n <= MAX_REFUSAL_LOGS)
        logmsg(M64MSG_WARNING, "refused a connection: %s", why);
    close(fd);
}

static void send_welcome(void) {
    uint8_t msg[KS_MSG_SIZE];
    header(msg, KS_WELCOME, 0);
    put_u32(msg + 16, P.present_mask);
    put_u32(msg + 20, PLUGIN_VERSION);
    put_u32(msg + 24, (uint32_t)(P.silence_ns / 1000000u));
    put_u32(msg + 28, (uint32_t)P.lock_ctrl + 1);
    if (send_msg(P.client_fd, msg) < 0)
        disconnect_client("could not send the welcome");
}

static void send_mode_ack(void) {
    uint8_t msg[KS_MSG_SIZE];
    header(msg, KS_MODE_ACK, P.ack_seq);
    int rc = send_msg(P.client_fd, msg);
    P.ack_pending = rc > 0;
    if (rc < 0)
        disconnect_client("could not acknowledge a mode change");
}

static void send_stats(void) {
    uint8_t msg[KS_MSG_SIZE];
    header(msg, KS_STATS, 0);
    put_u64(msg + 16, atomic_load(&P.polls));
    put_u32(msg + 24, atomic_load(&P.msgs_ok));
    put_u32(msg + 28, atomic_load(&P.malformed));
    put_u32(msg + 32, atomic_load(&P.unauthenticated));
    put_u32(msg + 36, atomic_load(&P.neutral_silence));
    put_u32(msg + 40, atomic_load(&P.connections));
    put_u32(msg + 44, atomic_load(&P.lockstep_timeouts));
    put_u32(msg + 48, atomic_load(&P.steps));
    put_u32(msg + 52, atomic_load(&P.reports_dropped));
    int rc = send_msg(P.client_fd, msg);
    P.stats_pending = rc > 0; /* KartStudio is behind on reading: answer when there is room */
    if (rc < 0)
        disconnect_client("could not send stats");
}

/* A message of the right size, magic, version and zeroed reserved header word; returns its type or -1. */
static int check_header(const uint8_t *msg, ssize_t n) {
    if (n != KS_MSG_SIZE || memcmp(msg, KS_MAGIC, 4) != 0 || get_u16(msg + 4) != KS_VERSION ||
        get_u32(msg + 12) != 0)
        return -1;
    return get_u16(msg + 6);
}

/* Parses a states payload (KS_STATES and KS_STEP). */
static int parse_states(const uint8_t *msg, uint32_t *mask, uint32_t buttons[KS_MAX_CONTROLLERS]) {
    *mask = get_u32(msg + 16);
    if (*mask == 0 || *mask > 0xF || !all_zero(msg + 36, KS_MSG_SIZE - 36))
        return -1;
    for (int i = 0; i < KS_MAX_CONTROLLERS; i++) buttons[i] = get_u32(msg + 20 + 4 * i) & KS_BUTTONS_VALID_MASK;
    return 0;
}

/* One message from the authenticated client; returns 0 if it was valid. */
static int handle_message(const uint8_t *msg, ssize_t n) {
    int type = check_header(msg, n);
    uint32_t seq = get_u32(msg + 8);
    uint32_t mask, buttons[KS_MAX_CONTROLLERS];
    switch (type) {
    case KS_STATES:
        if (seq == 0 || parse_states(msg, &mask, buttons) < 0)
            return -1;
        if (!atomic_load(&P.lockstep_on)) /* in lock-step, only steps drive the game */
            for (int i = 0; i < KS_MAX_CONTROLLERS; i++)
                if (mask & (1u << i))
                    atomic_store_explicit(&P.word[i], (uint64_t)seq << 32 | buttons[i], memory_order_release);
        return 0;
    case KS_STEP:
        if (seq == 0 || parse_states(msg, &mask, buttons) < 0)
            return -1;
        pthread_mutex_lock(&P.lock);
        if (atomic_load(&P.lockstep_on)) { /* a newer step replaces one not yet consumed */
            P.step_pending = 1;
            P.step_id = seq;
            P.step_mask = mask;
            memcpy(P.step_buttons, buttons, sizeof buttons);
            pthread_cond_broadcast(&P.cond);
        }
        pthread_mutex_unlock(&P.lock);
        return 0;
    case KS_MODE: {
        uint32_t on = get_u32(msg + 16), timeout_ms = get_u32(msg + 20), quiet = get_u32(msg + 24);
        if (on > 1 || timeout_ms > KS_MAX_LOCKSTEP_TIMEOUT_MS || quiet > 1 || !all_zero(msg + 28, KS_MSG_SIZE - 28))
            return -1;
        atomic_store(&P.quiet, (int)quiet);
        pthread_mutex_lock(&P.lock);
        P.lock_timeout_ms = timeout_ms ? timeout_ms : KS_DEFAULT_LOCKSTEP_TIMEOUT_MS;
        if (on != (uint32_t)atomic_load(&P.lockstep_on)) {
            P.step_pending = 0;
            atomic_store(&P.lock_timed_out, 0);
            atomic_store(&P.lockstep_on, (int)on);
            pthread_cond_broadcast(&P.cond);
        }
        pthread_mutex_unlock(&P.lock);
        P.ack_seq = seq; /* in force from now on: say so, so that KartStudio can rely on it */
        send_mode_ack();
        return 0;
    }
    case KS_STATS_REQ:
    case KS_KEEPALIVE:
    case KS_SYNC:
        if (!all_zero(msg + 16, KS_MSG_SIZE - 16))
            return -1;
        if (type == KS_STATS_REQ)
            send_stats();
        if (type == KS_SYNC) { /* answered by io_main once the reports queued by now are sent */
            P.sync_pending = 1;
            P.sync_seq = seq;
            P.sync_head = atomic_load_explicit(&P.ring_head, memory_order_acquire);
        }
        return 0;
    default: /* unknown type, bad header, or a second hello */
        return -1;
    }
}

/* SOCK_SEQPACKET reads 0 bytes both for a zero-length datagram and for a closed peer: ask poll. */
static int peer_closed(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) < 0)
        return errno != EINTR;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void read_client(void) {
    uint8_t msg[KS_MSG_SIZE + 1];
    for (int i = 0; i < MAX_MSGS_PER_WAKE; i++) {
        /* MSG_TRUNC: an oversized datagram reports its real length, so it is caught as malformed */
        ssize_t n = recv(P.client_fd, msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                disconnect_client(strerror(errno));
            return;
        }
        if (n == 0 && peer_closed(P.client_fd)) {
            disconnect_client("connection closed");
            return;
        }
        /* a zero-length datagram (n == 0, peer still there) is malformed like any short one */
        if (n > 0 && handle_message(msg, n) == 0) {
            atomic_fetch_add(&P.msgs_ok, 1);
            atomic_store_explicit(&P.last_rx_ns, now_ns(), memory_order_release);
        } else {
            atomic_fetch_add(&P.malformed, 1);
        }
        if (P.client_fd < 0)
            return;
    }
}

/* The first message of a connection: a well-formed hello with the right token, or the door. */
static void read_hello(int idx) {
    int fd = P.pending[idx].fd;
    P.pending[idx] = P.pending[--P.n_pending];
    uint8_t msg[KS_MSG_SIZE + 1];
    ssize_t n = recv(fd, msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC);
    if (n <= 0) {
        refuse(fd, n == 0 ? "closed before its hello" : "unreadable hello");
        return;
    }
    if (check_header(msg, n) != KS_HELLO || get_u32(msg + 8) != 0 || !all_zero(msg + 48, KS_MSG_SIZE - 48) ||
        !token_equal(msg + 16, P.token)) {
        refuse(fd, "its first message was not a hello with this launch's token");
        return;
    }
    if (P.client_fd >= 0)
        disconnect_client("replaced by a new connection");
    /* drop reports queued for the previous client */
    atomic_store(&P.ring_tail, atomic_load(&P.ring_head));
    set_all_neutral();
    P.client_fd = fd;
    atomic_store(&P.last_rx_ns, now_ns());
    atomic_store(&P.connected, 1);
    atomic_fetch_add(&P.connections, 1);
    logmsg(M64MSG_INFO, "KartStudio connected");
    send_welcome();
}

static void accept_one(void) {
    int fd = accept4(P.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.uid != geteuid()) {
        refuse(fd, "it belongs to another user");
        return;
    }
    if (P.n_pending >= MAX_PENDING) {
        refuse(fd, "too many connections waiting to say hello");
        return;
    }
    P.pending[P.n_pending].fd = fd;
    P.pending[P.n_pending].deadline_ns = now_ns() + (uint64_t)HELLO_TIMEOUT_MS * 1000000u;
    P.n_pending++;
}

static void flush_reports(void) {
    uint32_t tail = atomic_load_explicit(&P.ring_tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&P.ring_head, memory_order_acquire);
    uint8_t msg[KS_MSG_SIZE];
    while (tail != head && P.client_fd >= 0) {
        const report_t *r = &P.ring[tail & (RING_SIZE - 1)];
        header(msg, r->type, r->seq);
        if (r->type == KS_POLL) {
            msg[16] = r->controller;
            msg[17] = r->source;
            put_u32(msg + 20, r->buttons);
            put_u64(msg + 24, r->t_ns);
            put_u32(msg + 32, r->state_seq);
        } else if (r->type == KS_GAME_STATE) {
            msg[16] = r->controller;
            msg[17] = r->len;
            memcpy(msg + 18, r->data, r->len);
        } else {
            put_u64(msg + 16, r->t_ns);
        }
        int rc = send_msg(P.client_fd, msg);
        if (rc > 0)
            break; /* KartStudio is not reading: keep the rest for later */
        if (rc < 0) {
            disconnect_client("send failed");
            break;
        }
        tail++;
    }
    atomic_store_explicit(&P.ring_tail, tail, memory_order_release);
}

static void *io_main(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "kartstudio-io");
    struct pollfd fds[3 + MAX_PENDING];
    while (!atomic_load(&P.stop)) {
        int nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = P.wake_fd, .events = POLLIN};
        fds[nfds++] = (struct pollfd){.fd = P.listen_fd, .events = POLLIN};
        int client_idx = -1;
        if (P.client_fd >= 0) {
            client_idx = nfds;
            fds[nfds++] = (struct pollfd){.fd = P.client_fd, .events = POLLIN};
        }
        int first_pending = nfds;
        for (int i = 0; i < P.n_pending; i++) fds[nfds++] = (struct pollfd){.fd = P.pending[i].fd, .events = POLLIN};
        int timeout = P.client_fd >= 0 ? FLUSH_MS : (P.n_pending ? 100 : -1);

        if (poll(fds, (nfds_t)nfds, timeout) < 0 && errno != EINTR) {
            logmsg(M64MSG_ERROR, "the plugin's I/O thread stopped: poll: %s", strerror(errno));
            break;
        }
        if (fds[0].revents & POLLIN) {
            uint64_t v;
            if (read(P.wake_fd, &v, sizeof v) < 0) { /* nothing to do: it was a wake-up */ }
        }
        if (atomic_load(&P.stop))
            break;
        if (client_idx >= 0 && fds[client_idx].revents)
            read_client();
        /* pending connections: walk backwards, read_hello() swaps the last one into place */
        uint64_t now = now_ns();
        for (int i = P.n_pending - 1; i >= 0; i--) {
            if (first_pending + i < nfds && fds[first_pending + i].revents && fds[first_pending + i].fd == P.pending[i].fd) {
                read_hello(i);
            } else if (now > P.pending[i].deadline_ns) {
                int fd = P.pending[i].fd;
                P.pending[i] = P.pending[--P.n_pending];
                refuse(fd, "no hello within 2 s");
            }
        }
        if (fds[1].revents & POLLIN)
            accept_one();
        if (P.ack_pending && P.client_fd >= 0)
            send_mode_ack();
        if (P.stats_pending && P.client_fd >= 0)
            send_stats();
        flush_reports();
        if (P.sync_pending && P.client_fd >= 0 &&
            (int32_t)(atomic_load(&P.ring_tail) - P.sync_head) >= 0) {
            uint8_t msg[KS_MSG_SIZE];
            header(msg, KS_SYNC_ACK, P.sync_seq);
            int rc = send_msg(P.client_fd, msg);
            if (rc == 0)
                P.sync_pending = 0;
            else if (rc < 0)
                disconnect_client("send failed");
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- start-up and shut-down */

static int parse_token(const char *hex, uint8_t out[KS_TOKEN_SIZE]) {
    if (hex == NULL || strlen(hex) != 2 * KS_TOKEN_SIZE)
        return -1;
    for (int i = 0; i < KS_TOKEN_SIZE; i++) {
        unsigned v;
        char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
        char *end;
        v = (unsigned)strtoul(pair, &end, 16);
        if (*end != 0 || pair[0] == '+' || pair[0] == '-' || pair[0] == ' ')
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void parse_controllers(const char *spec) {
    int present[KS_MAX_CONTROLLERS] = {0};
    int any = 0, ok = spec != NULL && *spec != 0;
    for (const char *p = spec; ok && *p; p++) {
        if (*p >= '1' && *p <= '4') {
            present[*p - '1'] = 1;
            any = 1;
        } else if (*p != ',' && *p != ' ') {
            ok = 0;
        }
    }
    if (!ok || !any) {
        if (spec != NULL)
            logmsg(M64MSG_WARNING, "KARTSTUDIO_CONTROLLERS=\"%s\" is not a list like \"1,2\": using 1,2", spec);
        memset(present, 0, sizeof present);
        present[0] = present[1] = 1;
    }
    memcpy(P.present, present, sizeof present);
    P.present_mask = 0;
    P.lock_ctrl = -1;
    for (int i = 0; i < KS_MAX_CONTROLLERS; i++) {
        if (present[i]) {
            P.present_mask |= 1u << i;
            if (P.lock_ctrl < 0)
                P.lock_ctrl = i;
        }
    }
}

/* The socket's folder must be ours and closed to everyone else: it is what keeps others out. */
static int check_socket_dir(const char *path) {
    char dir[sizeof P.path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        logmsg(M64MSG_ERROR, "KARTSTUDIO_SOCKET=%s must be an absolute path inside a private folder", path);
        return -1;
    }
    *slash = 0;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        logmsg(M64MSG_ERROR, "cannot create %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        logmsg(M64MSG_ERROR, "%s must be a folder owned by this user with mode 0700", dir);
        return -1;
    }
    return 0;
}

/* Whether a process accepts connections on the socket at `path` (a stale one refuses them). */
static int socket_is_live(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1; /* cannot tell: leave it alone */
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int err = errno;
    close(fd);
    return rc == 0 || err == EAGAIN || err == EINPROGRESS; /* EAGAIN: alive, its backlog is full */
}

static int start_server(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        logmsg(M64MSG_ERROR, "KARTSTUDIO_SOCKET=%s is longer than a Unix socket path may be", path);
        return -1;
    }
    if (check_socket_dir(path) < 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            logmsg(M64MSG_ERROR, "%s exists and is not a socket: not touching it", path);
            return -1;
        }
        if (socket_is_live(path)) {
            logmsg(M64MSG_ERROR, "another emulator is listening on %s: not taking its socket", path);
            return -1;
        }
        unlink(path); /* a stale socket from a launch that crashed: nobody answers on it */
    }
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    P.listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (P.listen_fd < 0 || bind(P.listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        chmod(path, 0600) < 0 || listen(P.listen_fd, 16) < 0 || lstat(path, &st) < 0) {
        logmsg(M64MSG_ERROR, "cannot listen on %s: %s", path, strerror(errno));
        if (P.listen_fd >= 0)
            close(P.listen_fd);
        P.listen_fd = -1;
        return -1;
    }
    P.sock_dev = st.st_dev;
    P.sock_ino = st.st_ino;
    snprintf(P.path, sizeof P.path, "%s", path);
    P.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_store(&P.stop, 0);
    if (P.wake_fd < 0 || pthread_create(&P.io_thread, NULL, io_main, NULL) != 0) {
        logmsg(M64MSG_ERROR, "cannot start the plugin's I/O thread");
        close(P.listen_fd);
        unlink(path);
        if (P.wake_fd >= 0)
            close(P.wake_fd);
        P.listen_fd = P.wake_fd = -1;
        return -1;
    }
    P.serving = 1;
    logmsg(M64MSG_INFO, "listening on %s for KartStudio", path);
    return 0;
}

static void stop_server(void) {
    if (!P.serving)
        return;
    atomic_store(&P.stop, 1);
    wake_io();
    pthread_join(P.io_thread, NULL);
    disconnect_client("plugin shut down");
    for (int i = 0; i < P.n_pending; i++) close(P.pending[i].fd);
    P.n_pending = 0;
    close(P.listen_fd);
    close(P.wake_fd);
    P.listen_fd = P.wake_fd = -1;
    struct stat st; /* remove our socket file, and only ours */
    if (lstat(P.path, &st) == 0 && st.st_dev == P.sock_dev && st.st_ino == P.sock_ino)
        unlink(P.path);
    P.serving = 0;
}

static void reset_state(void) {
    set_all_neutral();
    atomic_store(&P.connected, 0);
    atomic_store(&P.lockstep_on, 0);
    atomic_store(&P.lock_timed_out, 0);
    atomic_store(&P.quiet, 0);
    atomic_store(&P.last_rx_ns, 0);
    atomic_store(&P.ring_head, 0);
    atomic_store(&P.ring_tail, 0);
    atomic_store(&P.polls, 0);
    atomic_uint *counters[] = {&P.msgs_ok, &P.malformed, &P.unauthenticated, &P.neutral_silence,
                               &P.connections, &P.lockstep_timeouts, &P.steps, &P.reports_dropped};
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) atomic_store(counters[i], 0);
    memset(P.poll_count, 0, sizeof P.poll_count);
    P.silence_counted_rx = 0;
    P.game_states = 0;
    P.step_pending = 0;
    P.last_step_id = 0;
    P.lock_timeout_ms = KS_DEFAULT_LOCKSTEP_TIMEOUT_MS;
}

EXPORT m64p_error CALL PluginStartup(m64p_dynlib_handle CoreLibHandle, void *Context,
                                     void (*DebugCallback)(void *, int, const char *)) {
    (void)CoreLibHandle; /* configuration comes from the environment, not the core's config API */
    if (P.started)
        return M64ERR_ALREADY_INIT;
    P.debug_ctx = Context;
    P.debug_cb = DebugCallback;
    reset_state();

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&P.cond, &ca);
    pthread_condattr_destroy(&ca);

    parse_controllers(getenv("KARTSTUDIO_CONTROLLERS"));
    P.state_ctrl = -1;
    const char *channel = getenv("KARTSTUDIO_STATE_CHANNEL");
    if (channel != NULL && *channel) {
        if (channel[0] >= '1' && channel[0] <= '4' && channel[1] == 0 && !P.present[channel[0] - '1'])
            P.state_ctrl = channel[0] - '1';
        else
            logmsg(M64MSG_WARNING, "KARTSTUDIO_STATE_CHANNEL=%s is not a port 1-4 without a controller: no state channel",
                   channel);
    }
    P.silence_ns = (uint64_t)KS_DEFAULT_SILENCE_MS * 1000000u;
    const char *silence = getenv("KARTSTUDIO_SILENCE_MS");
    if (silence != NULL) {
        long ms = strtol(silence, NULL, 10);
        if (ms >= 10 && ms <= KS_DEFAULT_SILENCE_MS)
            P.silence_ns = (uint64_t)ms * 1000000u;
        else
            logmsg(M64MSG_WARNING, "KARTSTUDIO_SILENCE_MS=%s is not 10..100: using 100", silence);
    }

    const char *path = getenv("KARTSTUDIO_SOCKET");
    const char *token = getenv("KARTSTUDIO_TOKEN");
    P.started = 1;
    if (path == NULL || *path == 0 || token == NULL) {
        logmsg(M64MSG_WARNING, "KARTSTUDIO_SOCKET or KARTSTUDIO_TOKEN is not set (start mupen64plus from "
                               "KartStudio): every controller stays neutral");
        return M64ERR_SUCCESS;
    }
    if (parse_token(token, P.token) < 0) {
        logmsg(M64MSG_WARNING, "KARTSTUDIO_TOKEN is not %d hex digits: every controller stays neutral",
               2 * KS_TOKEN_SIZE);
        return M64ERR_SUCCESS;
    }
    if (start_server(path) < 0)
        logmsg(M64MSG_WARNING, "no KartStudio connection is possible: every controller stays neutral");
    return M64ERR_SUCCESS;
}

EXPORT m64p_error CALL PluginShutdown(void) {
    if (!P.started)
        return M64ERR_NOT_INIT;
    stop_server();
    reset_state();
    memset(P.token, 0, sizeof P.token);
    pthread_cond_destroy(&P.cond);
    P.started = 0;
    P.debug_cb = NULL;
    P.debug_ctx = NULL;
    return M64ERR_SUCCESS;
}

EXPORT m64p_error CALL PluginGetVersion(m64p_plugin_type *PluginType, int *PluginVersion, int *APIVersion,
                                        const char **PluginNamePtr, int *Capabilities) {
    if (PluginType) *PluginType = M64PLUGIN_INPUT;
    if (PluginVersion) *PluginVersion = PLUGIN_VERSION;
    if (APIVersion) *APIVersion = INPUT_PLUGIN_API_VERSION;
    if (PluginNamePtr) *PluginNamePtr = PLUGIN_NAME;
    if (Capabilities) *Capabilities = 0;
    return M64ERR_SUCCESS;
}

EXPORT void CALL InitiateControllers(CONTROL_INFO ControlInfo) {
    if (ControlInfo.Controls == NULL)
        return;
    for (int i = 0; i < KS_MAX_CONTROLLERS; i++) {
        ControlInfo.Controls[i].Present = P.present[i];
        ControlInfo.Controls[i].RawData = i == P.state_ctrl; /* only the state channel's port, if any */
        ControlInfo.Controls[i].Plugin = PLUGIN_NONE;
        ControlInfo.Controls[i].Type = CONT_TYPE_STANDARD;
    }
    char list[16] = "";
    for (int i = 0; i < KS_MAX_CONTROLLERS; i++)
        if (P.present[i])
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d", *list ? "," : "", i + 1);
    logmsg(M64MSG_INFO, "controllers present: %s", *list ? list : "none");
}

/* Raw joybus data only reaches us for the state channel's port (RawData is 0 for the pads, which
 * the core answers itself). The core calls ReadController when the game has the PIF run its
 * commands, with Command pointing at the channel's bytes: tx length, rx length, then tx data. */
EXPORT void CALL ControllerCommand(int Control, unsigned char *Command) { (void)Control; (void)Command; }
EXPORT void CALL ReadController(int Control, unsigned char *Command) {
    if (Command == NULL || Control < 0 || Control != P.state_ctrl)
        return;
    unsigned tx = Command[0] & 0x3F;
    if (tx == 0 || tx > KS_GAME_STATE_MAX || Command[2] != KS_GAME_STATE_CMD)
        return;
    P.game_states++;
    if (!atomic_load_explicit(&P.connected, memory_order_acquire))
        return;
    report_t r = {.type = KS_GAME_STATE, .controller = (uint8_t)(Control + 1), .seq = P.game_states,
                  .t_ns = now_ns(), .len = (uint8_t)tx};
    memcpy(r.data, Command + 2, tx);
    ring_push(&r);
}
EXPORT int CALL RomOpen(void) { return 1; }
EXPORT void CALL RomClosed(void) {}
EXPORT void CALL SDL_KeyDown(int keymod, int keysym) { (void)keymod; (void)keysym; }
EXPORT void CALL SDL_KeyUp(int keymod, int keysym) { (void)keymod; (void)keysym; }
