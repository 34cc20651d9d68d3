/* KartStudio input plugin wire protocol (see docs/plugin-protocol.md).
 *
 * Every message, in both directions, is exactly KS_MSG_SIZE bytes, little-endian, sent as one
 * SOCK_SEQPACKET datagram over a Unix domain socket: a 16-byte header, then a 48-byte payload.
 */
#ifndef KARTSTUDIO_PROTOCOL_H
#define KARTSTUDIO_PROTOCOL_H

#include <stdint.h>

#define KS_MAGIC "KSIP"
#define KS_VERSION 1
#define KS_MSG_SIZE 64
#define KS_HEADER_SIZE 16
#define KS_TOKEN_SIZE 32
#define KS_MAX_CONTROLLERS 4

/* KartStudio -> plugin */
enum {
    KS_HELLO = 1,     /* payload: 32-byte token; must be the first message of a connection */
    KS_STATES = 2,    /* payload: u32 mask, u32 buttons[4]; free-run: latest state wins */
    KS_STEP = 3,      /* same payload; lock-step: the state for the next poll; seq = step id */
    KS_MODE = 4,      /* payload: u32 lockstep (0/1), u32 lockstep_timeout_ms (0 = default), u32 quiet (1 = no poll reports) */
    KS_STATS_REQ = 5, /* no payload; answered by KS_STATS */
    KS_KEEPALIVE = 6, /* no payload; only says "KartStudio is alive" */
    KS_SYNC = 7,      /* no payload; answered by KS_SYNC_ACK once every poll made before it was reported */
};

/* plugin -> KartStudio */
enum {
    KS_WELCOME = 0x81, /* payload: u32 present mask, u32 plugin version, u32 silence_ms, u32 lockstep controller */
    KS_POLL = 0x82,    /* seq = that controller's poll counter; payload in docs/plugin-protocol.md */
    KS_READY = 0x83,   /* lock-step: seq = last step consumed; the game waits for the next one */
    KS_STATS = 0x84,   /* payload: counters (docs/plugin-protocol.md) */
    KS_MODE_ACK = 0x85, /* seq = the KS_MODE message now in force */
    KS_SYNC_ACK = 0x86, /* seq = the KS_SYNC message; every earlier poll's report was sent before it */
    KS_GAME_STATE = 0x87, /* seq = packet counter; payload: u8 controller, u8 length, the game's bytes */
};

/* Where the state a poll returned came from (KS_POLL "source"). */
enum {
    KS_SRC_STATE = 0,            /* a state KartStudio sent (state_seq says which message) */
    KS_SRC_NO_CLIENT = 1,        /* neutral: no authenticated KartStudio connection */
    KS_SRC_SILENCE = 2,          /* neutral: nothing heard from KartStudio for silence_ms */
    KS_SRC_LOCKSTEP_TIMEOUT = 3, /* neutral: lock-step wait for the next step timed out */
    KS_SRC_NO_STATE_YET = 4,     /* neutral: connected, but no state sent for this controller yet */
};

#define KS_DEFAULT_SILENCE_MS 100
#define KS_DEFAULT_LOCKSTEP_TIMEOUT_MS 2000
#define KS_MAX_LOCKSTEP_TIMEOUT_MS 60000

/* The game state channel (off unless KARTSTUDIO_STATE_CHANNEL names a port): a game sends joybus
 * command KS_GAME_STATE_CMD with up to KS_GAME_STATE_MAX bytes (command byte included) to that
 * port, which has no pad; the plugin takes the port's raw data and forwards the bytes as they are. */
#define KS_GAME_STATE_CMD 0x4B
#define KS_GAME_STATE_MAX 46

/* BUTTONS bits 14 and 15 are reserved in m64p_plugin.h: never hand them to the game. */
#define KS_BUTTONS_VALID_MASK 0xFFFF3FFFu

#endif
