/* Tracks: closed circuits made from a track number (0-999) with a small deterministic PRNG.
 * A circuit is a list of pieces of constant curvature (0 = straight) whose turns add up to
 * exactly one full turn, so the heading (and the scenery that follows it) joins up at the line. */
#include "raceway.h"

Track track;

static const char *const names[] = {
    "KARTSTUDIO OVAL", "RACEWAY PARK", "HAIRPIN HILLS", "SNAKE VALLEY", "SUNSET SWEEPERS", "TWIN LAKES",
};
#define N_NAMED (int)(sizeof names / sizeof names[0])

const char *track_name(int number) { return number >= 0 && number < N_NAMED ? names[number] : 0; }

static u32 rng;
static u32 rnd(void) { /* xorshift32 */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}
static int rnd_range(int lo, int hi) { return lo + (int)(rnd() % (u32)(hi - lo + 1)); }

/* turn: 65536 per full turn, signed (+ right); per_deg: units of length per degree of turn */
static void add(int len, int turn) {
    if (track.n >= MAX_PIECES) return;
    Piece *p = &track.p[track.n++];
    p->len = len;
    p->curv = turn ? (turn << 8) / len : 0;
}

static void finish(void) {
    /* the rounding of curv is put right in the last curve, so the turns add up exactly */
    s32 total = 0, s = 0;
    int last = -1;
    for (int i = 0; i < track.n; i++) {
        total += track.p[i].curv * track.p[i].len;
        if (track.p[i].curv) last = i;
    }
    s32 target = (total >= 0 ? 65536 : -65536) << 8;
    if (last >= 0) {
        Piece *p = &track.p[last];
        s32 others = total - p->curv * p->len;
        p->curv = (target - others) / p->len;
        /* and the remainder of the division as length (a few units at most) */
        s32 rem = target - others - p->curv * p->len;
        if (p->curv) p->len += rem / p->curv;
    }
    for (int i = 0; i < track.n; i++) {
        track.p[i].start = s;
        s += track.p[i].len;
    }
    track.length = s;
}

static void oval(void) {
    add(14000, 0);
    add(9000, 32768);
    add(14000, 0);
    add(9000, 32768);
}

void track_make(int number) {
    number = ((number % 1000) + 1000) % 1000;
    track.number = number;
    track.name = track_name(number);
    track.n = 0;
    if (number == 0) {
        oval();
        finish();
        return;
    }
    rng = (u32)number * 2654435761u ^ 0x5EED1234u;
    for (int i = 0; i < 8; i++) rnd();
    int dir = (rnd() & 1) ? 1 : -1;      /* clockwise or not */
    add(rnd_range(5000, 9000), 0);       /* the start straight */
    int curves = rnd_range(6, 11);
    s32 turned = 0;
    for (int c = 0; c < curves; c++) {
        int deg = rnd_range(20, 150);
        int sign = (rnd() % 100) < 68 ? dir : -dir;
        int per_deg = rnd_range(35, 150);  /* sharpness: 35 = hairpin, 150 = gentle sweeper */
        int turn = sign * deg * 65536 / 360;
        add(deg * per_deg, turn);
        turned += turn;
        if (rnd() % 100 < 70) add(rnd_range(1500, 6000), 0);
    }
    /* close the loop: the rest of the full turn in curves of at most 150 degrees */
    s32 rest = dir * 65536 - turned;
    while (rest != 0 && track.n < MAX_PIECES - 2) {
        s32 chunk = clampi(rest, -150 * 65536 / 360, 150 * 65536 / 360);
        int deg = iabs(chunk) * 360 / 65536 + 1;
        add(deg * rnd_range(50, 130), chunk);
        rest -= chunk;
        add(rnd_range(1500, 5000), 0);
    }
    finish();
}

int track_piece(s32 s, int hint) {
    int i = (unsigned)hint < (unsigned)track.n ? hint : 0;
    for (int k = 0; k < track.n; k++) {
        const Piece *p = &track.p[i];
        if (s >= p->start && s < p->start + p->len) return i;
        i = (i + 1) % track.n;
    }
    return 0;
}

s32 track_heading(s32 s, int hint) {
    int i = track_piece(s, hint);
    s32 h = 0;
    for (int k = 0; k < i; k++) h += track.p[k].curv * track.p[k].len;
    h += track.p[i].curv * (s - track.p[i].start);
    return h >> 8;
}
