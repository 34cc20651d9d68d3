/* KartStudio Raceway: the main loop, the menus, the race and its physics, the controller reads
 * and the state channel. One game frame per video frame (60 a second), and exactly one
 * controller read (joybus command 0x01 on channels 0 and 1) per game frame. */
#include "raceway.h"

#define FB0 ((u16 *)0xA0100000)
#define FB1 ((u16 *)0xA0140000)

enum { PH_TITLE, PH_MODE, PH_TRACK, PH_COUNTDOWN, PH_RACE, PH_RESULTS, PH_PAUSED };
#define COUNTDOWN_FRAMES 180
#define STATE_CMD 0x4B
#define STATE_VERSION 1

int players = 2, race_laps = 3;
static int phase = PH_TITLE, cursor = 0, track_no = 0, phase_frames = 0, paused_from = 0;
static u32 frame;
static Kart karts[2];
static Pad pads[2], prev_pads[2];

/* ------------------------------------------------------------------ video */
static void video_init(void) {
    static const u32 regs[][2] = {
        {0x00, 0x3202}, {0x04, 0x00100000}, {0x08, 320}, {0x0C, 0x200}, {0x14, 0x03E52239},
        {0x18, 0x20D}, {0x1C, 0xC15}, {0x20, 0x0C150C15}, {0x24, 0x006C02EC}, {0x28, 0x002501FF},
        {0x2C, 0x000E0204}, {0x30, 0x200}, {0x34, 0x400},
    };
    for (unsigned i = 0; i < sizeof regs / sizeof regs[0]; i++) VI_REG(regs[i][0]) = regs[i][1];
}

static void wait_vblank(void) {
    while (!(MI_INTR & 0x08)) {}
    VI_CURRENT = 0; /* acknowledges the VI interrupt */
}

/* ------------------------------------------------------------------ the PIF */
static u32 pif_block[16] __attribute__((aligned(16)));

static void pif_exchange(void) {
    u32 addr = (u32)pif_block & 0x1FFFFFFF;
    while (SI_STATUS & 3) {}
    SI_DRAM_ADDR = addr;
    SI_PIF_WR64 = 0x1FC007C0; /* RDRAM -> PIF RAM */
    while (SI_STATUS & 3) {}
    SI_STATUS = 0;
    SI_DRAM_ADDR = addr;
    SI_PIF_RD64 = 0x1FC007C0; /* the PIF runs the commands; PIF RAM -> RDRAM */
    while (SI_STATUS & 3) {}
    SI_STATUS = 0;
}

void pads_read(Pad out[2]) {
    volatile u32 *b = UNCACHED(pif_block);
    for (int i = 0; i < 16; i++) b[i] = 0;
    /* per channel: tx 1, rx 4, command 0x01 (read buttons), 4 reply bytes; 0xFE ends the list */
    b[0] = 0xFF010401; b[1] = 0xFFFFFFFF;
    b[2] = 0xFF010401; b[3] = 0xFFFFFFFF;
    b[4] = 0xFE000000;
    b[15] = 1;
    pif_exchange();
    for (int i = 0; i < 2; i++) {
        u32 status = b[2 * i], reply = b[2 * i + 1];
        if (status & 0x0000C000) reply = 0; /* no controller, or an error: neutral */
        out[i].raw = reply;
        out[i].buttons = (u16)(reply >> 16);
        out[i].x = (s8)(reply >> 8);
        out[i].y = (s8)reply;
    }
}

/* The state channel: a joybus command 0x4B to channel 3 (controller 4), which has no pad. Our
 * input plugin takes that channel's raw data and forwards the bytes to KartStudio. Never drawn. */
void state_send(const u8 *bytes, int n) {
    volatile u8 *b = UNCACHED(pif_block);
    for (int i = 0; i < 64; i++) b[i] = 0;
    b[0] = 0; b[1] = 0; b[2] = 0;   /* channels 0-2: skipped */
    b[3] = (u8)n;                   /* tx bytes */
    b[4] = 0;                       /* rx bytes: no reply */
    for (int i = 0; i < n; i++) b[5 + i] = bytes[i];
    b[5 + n] = 0xFE;
    b[63] = 1;
    pif_exchange();
}

static void put16(u8 *p, u32 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { p[0] = (u8)(v >> 24); p[1] = (u8)(v >> 16); p[2] = (u8)(v >> 8); p[3] = (u8)v; }

/* 46 bytes, big-endian; layout in docs/raceway.md and kartstudio/emulator/raceway.py */
static void send_state(void) {
    u8 m[46];
    for (int i = 0; i < 46; i++) m[i] = 0;
    m[0] = STATE_CMD;
    m[1] = STATE_VERSION;
    m[2] = (u8)phase;
    m[3] = (u8)players;
    put32(m + 4, frame);
    put16(m + 8, (u32)track_no);
    m[10] = (u8)race_laps;
    m[11] = (u8)(phase == PH_COUNTDOWN ? (COUNTDOWN_FRAMES - phase_frames + 59) / 60 : 0);
    for (int i = 0; i < 2; i++) {
        const Kart *k = &karts[i];
        u8 *q = m + 12 + 17 * i;
        if (!k->active) continue;
        s32 s = k->s >> 8;
        put16(q, (u32)((s << 8) / (track.length >> 8)));   /* lap fraction, 65536 per lap */
        q[2] = (u8)k->lap;
        q[3] = (u8)(k->offroad | k->finished << 1 | (k->rank == 1) << 2 | (k->hop > 0) << 3 | (k->drift != 0) << 4);
        put16(q + 4, (u32)clampi(k->lat >> 4, -32768, 32767));           /* units * 16 */
        put16(q + 6, (u32)(s16)k->herr);                                  /* 65536 per turn */
        put16(q + 8, (u32)(k->speed >> 4));                               /* units per frame * 16 */
        put32(q + 10, k->pad.raw);
        put16(q + 14, k->finished ? k->finish_time : k->race_time);
        q[16] = (u8)(s8)clampi(track.p[track_piece((s + 3000) % track.length, k->piece)].curv / 8, -127, 127);
    }
    state_send(m, 46);
}

/* ------------------------------------------------------------------ input helpers */
static u16 pressed(int i) { /* buttons that went down this frame, the stick as the d-pad */
    u16 cur = pads[i].buttons, old = prev_pads[i].buttons;
    if (pads[i].x > 40) cur |= BTN_DR;
    if (pads[i].x < -40) cur |= BTN_DL;
    if (pads[i].y > 40) cur |= BTN_DU;
    if (pads[i].y < -40) cur |= BTN_DD;
    if (prev_pads[i].x > 40) old |= BTN_DR;
    if (prev_pads[i].x < -40) old |= BTN_DL;
    if (prev_pads[i].y > 40) old |= BTN_DU;
    if (prev_pads[i].y < -40) old |= BTN_DD;
    return cur & ~old;
}

static void set_phase(int p) { phase = p; phase_frames = 0; }

/* ------------------------------------------------------------------ the race */
static void race_start(void) {
    track_make(track_no);
    for (int i = 0; i < 2; i++) {
        Kart *k = &karts[i];
        memset(k, 0, sizeof *k);
        k->active = i < players;
        k->s = 300 << 8;
        k->lat = (players == 2 ? (i ? 420 : -420) : 0) << 8;
        k->rank = (u8)(i + 1);
        k->color = i ? RGB(40, 110, 240) : RGB(230, 40, 40);
        k->color2 = i ? RGB(20, 50, 120) : RGB(110, 20, 20);
    }
    set_phase(PH_COUNTDOWN);
}

static void kart_update(Kart *k, const Pad *pad, int racing) {
    k->pad = *pad;
    if (!k->active) return;
    if (k->finished || !racing) { /* coast to a stop after the line */
        k->speed -= k->speed / 32 + 8;
        if (k->speed < 0) k->speed = 0;
        if (!racing && !k->finished) return;
    }
    int steer = racing && !k->finished ? clampi(pad->x, -80, 80) : 0;
    if (iabs(steer) < 6) steer = 0;
    u16 b = racing && !k->finished ? pad->buttons : 0;
    s32 s = k->s >> 8;
    k->piece = track_piece(s, k->piece);
    s32 curv = track.p[k->piece].curv;

    k->offroad = iabs(k->lat >> 8) > RUMBLE_OUT;
    s32 vmax = k->offroad ? SPEED_MAX * 2 / 5 : SPEED_MAX;
    if (b & BTN_A) k->speed += k->speed < vmax ? 100 - k->speed * 70 / SPEED_MAX : 0;
    else k->speed -= 10;
    if (b & BTN_B) k->speed -= 90;
    if (k->speed > vmax) k->speed -= k->offroad ? 90 : 20;
    if (k->speed < 0) k->speed = 0;

    /* hop with R; landing with the stick held starts a drift (sharper turns, a little slide) */
    if (k->hop > 0) {
        k->hop--;
        if (k->hop == 0 && (b & BTN_R) && steer) k->drift = steer > 0 ? 1 : -1;
    }
    if (!(b & BTN_R)) k->drift = 0;

    /* turning: the yaw rate is limited by grip (lateral acceleration = yaw rate x speed), so a
     * curve taken too fast cannot be followed and the road carries the kart outwards */
    s32 v = k->speed >> 8;
    s32 grip_yaw = v > 0 ? (k->drift ? 10500 : 7800) / v : 400;
    s32 low_yaw = v * 14;
    s32 yaw_max = clampi(grip_yaw < low_yaw ? grip_yaw : low_yaw, 0, 400);
    s32 yaw = steer * yaw_max / 80;
    if (k->drift) yaw += k->drift * yaw_max / 4;
    k->herr += yaw;
    /* the road turns under the kart as it moves on */
    s32 ds = (k->speed * icos(k->herr)) >> 14;   /* units << 8 along the road */
    s32 dl = (k->speed * isin(k->herr)) >> 14;   /* units << 8 sideways */
    k->herr -= (curv * (ds >> 8)) >> 8;
    if (k->drift) dl -= (k->drift * k->speed) / 10;
    k->herr = clampi(k->herr, -16000, 16000);
    k->lat += dl;
    if (iabs(k->lat >> 8) > LAT_LIMIT) { /* the barrier: stop there, lose speed, point back in */
        k->lat = (k->lat > 0 ? LAT_LIMIT : -LAT_LIMIT) << 8;
        k->speed -= k->speed / 8;
        k->herr -= k->herr / 2;
    }
    k->s += ds;
    s32 L8 = track.length << 8;
    if (k->s >= L8) { k->s -= L8; k->lap++; k->piece = 0;
        if (k->lap <= 9 && k->lap >= 1) k->lap_times[k->lap - 1] = k->race_time - k->lap_start;
        k->lap_start = k->race_time;
        if (k->lap >= race_laps && !k->finished) { k->finished = 1; k->finish_time = k->race_time; }
    }
    if (k->s < 0) { k->s += L8; k->lap--; }
}

static void start_hop(Kart *k, const Pad *pad, const Pad *prev) {
    if (k->active && (pad->buttons & BTN_R) && !(prev->buttons & BTN_R) && k->hop == 0 && !k->finished) k->hop = 12;
}

static void karts_bump(void) {
    Kart *a = &karts[0], *b = &karts[1];
    if (!a->active || !b->active) return;
    s32 ds = (a->s - b->s) >> 8, dl = (a->lat - b->lat) >> 8;
    if (iabs(ds) < 260 && iabs(dl) < 420) { /* side by side: push apart */
        s32 push = (420 - iabs(dl)) << 7;
        if (dl >= 0) { a->lat += push; b->lat -= push; } else { a->lat -= push; b->lat += push; }
    }
    s32 pa = a->lap * track.length + (a->s >> 8), pb = b->lap * track.length + (b->s >> 8);
    if (a->finished && b->finished) { a->rank = a->finish_time <= b->finish_time ? 1 : 2; }
    else if (a->finished || b->finished) a->rank = a->finished ? 1 : 2;
    else a->rank = pa >= pb ? 1 : 2;
    b->rank = (u8)(3 - a->rank);
}

/* ------------------------------------------------------------------ screens */
static void title_screen(void) {
    fill_rows(0, 80, RGB(60, 120, 220));
    fill_rows(80, 240, RGB(40, 150, 40));
    for (int y = 120; y < 240; y++) { /* a road running into the distance */
        int w = (y - 100) * 2;
        span(y, 160 - w - 12, 160 + w + 12, ((y >> 3) & 1) ? RGB(220, 30, 30) : RGB(240, 240, 240));
        span(y, 160 - w, 160 + w, RGB(100, 100, 106));
    }
    text_centred(161, 31, "KARTSTUDIO", RGB(20, 20, 40), 3, 3);
    text_centred(160, 30, "KARTSTUDIO", RGB(255, 220, 40), 3, 3);
    text_centred(160, 60, "RACEWAY", RGB(255, 255, 255), 2, 2);
    draw_kart_sprite(130, 200, 56, 1, RGB(230, 40, 40), RGB(110, 20, 20), 0, 240);
    draw_kart_sprite(190, 200, 56, 1, RGB(40, 110, 240), RGB(20, 50, 120), 0, 240);
    if ((frame >> 5) & 1) text_centred(160, 100, "PRESS START", RGB(255, 255, 255), 1, 2);
}

static void menu_background(const char *title) {
    fill_rows(0, 240, RGB(30, 40, 90));
    fill_rows(0, 36, RGB(20, 25, 60));
    text_centred(160, 12, title, RGB(255, 220, 40), 2, 2);
}

static void mode_screen(void) {
    menu_background("SELECT MODE");
    static const char *const items[2] = {"1 PLAYER", "2 PLAYER VS"};
    for (int i = 0; i < 2; i++) {
        u16 c = cursor == i ? RGB(255, 255, 255) : RGB(140, 150, 190);
        if (cursor == i) rect(70, 86 + i * 50, 180, 30, RGB(60, 80, 170), 0, 240);
        text_centred(160, 94 + i * 50, items[i], c, 2, 2);
    }
    text_centred(160, 210, "UP/DOWN  A: OK  B: BACK", RGB(160, 170, 210), 1, 1);
}

static void track_screen(void) {
    char buf[24];
    menu_background("SELECT TRACK");
    buf[0] = '#';
    fmt_int(buf + 1, track_no, 3);
    text_centred(160, 60, buf, RGB(255, 255, 255), 4, 4);
    const char *name = track_name(track_no);
    text_centred(160, 100, name ? name : "GENERATED CIRCUIT", RGB(255, 220, 40), 1, 2);
    char *p = buf;
    const char *lt = "LAPS ";
    while (*lt) *p++ = *lt++;
    fmt_int(p, race_laps, 1);
    text_centred(160, 126, buf, RGB(255, 255, 255), 2, 2);
    text_centred(160, 160, players == 2 ? "2 PLAYER VS" : "1 PLAYER", RGB(160, 170, 210), 1, 1);
    text_centred(160, 186, "LEFT/RIGHT +-1  C< C> +-10  L/R +-100", RGB(160, 170, 210), 1, 1);
    text_centred(160, 200, "UP/DOWN: LAPS  A: RACE  B: BACK", RGB(160, 170, 210), 1, 1);
}

static void results_screen(void) {
    char buf[32], *p;
    menu_background("RESULTS");
    for (int i = 0; i < players; i++) {
        const Kart *k = &karts[i];
        int y = 52 + i * 84;
        p = buf; *p++ = 'P'; *p++ = (char)('1' + i); *p++ = ' '; *p++ = ' ';
        const char *r = k->rank == 1 ? "1ST  " : "2ND  ";
        while (*r) *p++ = *r++;
        fmt_time(p, k->finish_time);
        text_centred(160, y, buf, i ? RGB(120, 170, 255) : RGB(255, 110, 110), 2, 2);
        for (int l = 0; l < race_laps && l < 9; l++) {
            p = buf; *p++ = 'L'; *p++ = (char)('1' + l); *p++ = ' ';
            fmt_time(p, k->lap_times[l]);
            text(60 + (l % 3) * 72, y + 22 + (l / 3) * 12, buf, RGB(220, 220, 230), 1, 1);
        }
    }
    text_centred(160, 222, "A: TRACK SELECT", RGB(160, 170, 210), 1, 1);
}

static void countdown_overlay(int y0, int h) {
    int left = COUNTDOWN_FRAMES - phase_frames;
    char buf[4] = {0};
    int sy = h > 150 ? 6 : 3;
    if (phase == PH_COUNTDOWN) buf[0] = (char)('0' + (left + 59) / 60);
    else if (phase_frames < 50) { buf[0] = 'G'; buf[1] = 'O'; buf[2] = '!'; }
    else return;
    text_centred(161, y0 + h / 3 - 2 * sy + 1, buf, RGB(20, 20, 20), 3 * sy / 3 + 1, sy);
    text_centred(160, y0 + h / 3 - 2 * sy, buf, RGB(255, 230, 40), 3 * sy / 3 + 1, sy);
}

static void draw_race(void) {
    if (players == 1) {
        render_view(0, 240, &karts[0], 0, 1);
        countdown_overlay(0, 240);
    } else {
        render_view(0, 120, &karts[0], &karts[1], 1);
        render_view(120, 120, &karts[1], &karts[0], 2);
        countdown_overlay(0, 120);
        countdown_overlay(120, 120);
    }
    for (int i = 0; i < players; i++)
        if (karts[i].finished) text_centred(160, (players == 2 ? i * 120 : 0) + 50, "FINISH!", RGB(255, 255, 255), 2, 2);
    if (phase == PH_PAUSED) {
        rect(100, 100, 120, 40, RGB(20, 20, 40), 0, 240);
        text_centred(160, 106, "PAUSED", RGB(255, 255, 255), 2, 2);
        text_centred(160, 128, "B: QUIT", RGB(180, 180, 200), 1, 1);
    }
}

/* ------------------------------------------------------------------ one frame */
static void update(void) {
    u16 p1 = pressed(0);
    phase_frames++;
    switch (phase) {
    case PH_TITLE:
        if (p1 & (BTN_START | BTN_A)) set_phase(PH_MODE);
        break;
    case PH_MODE:
        if (p1 & (BTN_DU | BTN_DD)) cursor ^= 1;
        if (p1 & (BTN_A | BTN_START)) { players = cursor + 1; set_phase(PH_TRACK); }
        else if (p1 & BTN_B) set_phase(PH_TITLE);
        break;
    case PH_TRACK: {
        int d = 0;
        if (p1 & BTN_DR) d += 1;
        if (p1 & BTN_DL) d -= 1;
        if (p1 & BTN_CR) d += 10;
        if (p1 & BTN_CL) d -= 10;
        if (p1 & BTN_R) d += 100;
        if (p1 & BTN_L) d -= 100;
        track_no = (track_no + d + 1000) % 1000;
        if (p1 & BTN_DU) race_laps = race_laps % 9 + 1;
        if (p1 & BTN_DD) race_laps = (race_laps + 7) % 9 + 1;
        if (p1 & (BTN_A | BTN_START)) race_start();
        else if (p1 & BTN_B) set_phase(PH_MODE);
        break;
    }
    case PH_COUNTDOWN:
        for (int i = 0; i < 2; i++) kart_update(&karts[i], &pads[i], 0);
        if (phase_frames >= COUNTDOWN_FRAMES) set_phase(PH_RACE);
        break;
    case PH_RACE: {
        if ((p1 | pressed(1)) & BTN_START) { paused_from = phase_frames; phase = PH_PAUSED; break; }
        int all = 1;
        for (int i = 0; i < 2; i++) {
            Kart *k = &karts[i];
            start_hop(k, &pads[i], &prev_pads[i]);
            if (k->active && !k->finished) k->race_time++;
            kart_update(k, &pads[i], 1);
            if (k->active && !k->finished) all = 0;
        }
        karts_bump();
        static int done_frames;
        if (!all) done_frames = 0;
        else if (++done_frames > 120) { done_frames = 0; set_phase(PH_RESULTS); }
        break;
    }
    case PH_PAUSED:
        for (int i = 0; i < 2; i++) karts[i].pad = pads[i];
        if ((p1 | pressed(1)) & BTN_START) { phase = PH_RACE; phase_frames = paused_from; }
        else if (p1 & BTN_B) set_phase(PH_TRACK);
        break;
    case PH_RESULTS:
        if (phase_frames > 30 && (p1 & (BTN_A | BTN_START))) set_phase(PH_TRACK);
        break;
    }
}

static void draw(void) {
    switch (phase) {
    case PH_TITLE: title_screen(); break;
    case PH_MODE: mode_screen(); break;
    case PH_TRACK: track_screen(); break;
    case PH_RESULTS: results_screen(); break;
    default: draw_race(); break;
    }
}

void render_init(void);

int main(void) {
    math_init();
    render_init();
    track_make(0);
    u16 *buffers[2] = {FB0, FB1};
    int back = 1;
    fb = buffers[0];
    fill_rows(0, SCREEN_H, RGB(0, 0, 0));
    video_init();
    for (;;) {
        /* show the frame drawn last time at the start of this video frame; draw the next one
         * into the other buffer, so the picture never tears */
        wait_vblank();
        VI_ORIGIN = (u32)fb & 0x1FFFFFFF;
        fb = buffers[back];
        back ^= 1;
        frame++;
        prev_pads[0] = pads[0];
        prev_pads[1] = pads[1];
        pads_read(pads);
        update();
        draw();
        send_state();
    }
}
