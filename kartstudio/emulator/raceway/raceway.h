/* KartStudio Raceway: shared types, hardware registers and the game's interfaces. */
#ifndef RACEWAY_H
#define RACEWAY_H

typedef unsigned char u8;
typedef signed char s8;
typedef unsigned short u16;
typedef short s16;
typedef unsigned int u32;
typedef int s32;

#define REG(a) (*(volatile u32 *)(a))
#define MI_INTR REG(0xA4300008)
#define VI_REG(off) REG(0xA4400000 + (off))
#define VI_ORIGIN VI_REG(0x04)
#define VI_CURRENT VI_REG(0x10)
#define SI_DRAM_ADDR REG(0xA4800000)
#define SI_PIF_RD64 REG(0xA4800004)
#define SI_PIF_WR64 REG(0xA4800010)
#define SI_STATUS REG(0xA4800018)
#define UNCACHED(p) ((void *)((u32)(p) | 0xA0000000u))

void *memset(void *d, int c, unsigned n);
void *memcpy(void *d, const void *s, unsigned n);

/* ---- screen: 320x240 RGBA5551 */
#define SCREEN_W 320
#define SCREEN_H 240
#define RGB(r, g, b) ((u16)((((r) >> 3) << 11) | (((g) >> 3) << 6) | (((b) >> 3) << 1) | 1))
extern u16 *fb; /* the buffer being drawn (uncached address) */
void span(int y, int x0, int x1, u16 c);   /* pixels x0..x1-1 of row y, clipped to the screen */
void rect(int x, int y, int w, int h, u16 c, int clip_y0, int clip_y1);
void fill_rows(int y0, int y1, u16 c);
int text(int x, int y, const char *s, u16 c, int sx, int sy); /* returns the x after the text */
int text_width(const char *s, int sx);
void text_centred(int cx, int y, const char *s, u16 c, int sx, int sy);
char *fmt_int(char *out, int v, int min_digits);
char *fmt_time(char *out, u32 frames); /* m'ss"cc */

/* ---- pads: the N64 reply bytes as one word: buttons in the high 16 bits, then stick x, y */
#define BTN_A 0x8000
#define BTN_B 0x4000
#define BTN_Z 0x2000
#define BTN_START 0x1000
#define BTN_DU 0x0800
#define BTN_DD 0x0400
#define BTN_DL 0x0200
#define BTN_DR 0x0100
#define BTN_L 0x0020
#define BTN_R 0x0010
#define BTN_CU 0x0008
#define BTN_CD 0x0004
#define BTN_CL 0x0002
#define BTN_CR 0x0001
typedef struct {
    u32 raw;  /* the 4 reply bytes, big-endian: buttons hi, buttons lo, x, y */
    u16 buttons;
    s8 x, y;
} Pad;
void pads_read(Pad pads[2]);
void state_send(const u8 *bytes, int n); /* joybus command to channel 3, forwarded by our plugin */

/* ---- math */
extern s16 sintab[1024]; /* full wave, +-16384; index = angle (65536 per turn) >> 6 */
void math_init(void);
static inline int isin(int a) { return sintab[((u32)a >> 6) & 1023]; }
static inline int icos(int a) { return sintab[((u32)(a + 16384) >> 6) & 1023]; }
static inline int iabs(int v) { return v < 0 ? -v : v; }
static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- track: a closed loop of pieces with constant curvature */
#define MAX_PIECES 48
#define ROAD_HALF 1024     /* lateral units from the centre line to the road edge */
#define RUMBLE_OUT 1200
#define POST_LAT 1750      /* roadside posts */
#define LAT_LIMIT 2000     /* barrier: karts cannot go further out */
#define POST_EVERY 1600
typedef struct {
    s32 start, len; /* in track units */
    s32 curv;       /* heading change per unit, in (65536 per turn) << 8 */
} Piece;
typedef struct {
    int number;
    const char *name;
    int n;
    s32 length;
    Piece p[MAX_PIECES];
} Track;
extern Track track;
void track_make(int number);
int track_piece(s32 s, int hint); /* index of the piece holding s (0 <= s < length) */
const char *track_name(int number);
s32 track_heading(s32 s, int hint); /* absolute road heading at s (65536 per turn) */

/* ---- karts */
typedef struct {
    s32 s;        /* position along the lap, units << 8 */
    s32 lat;      /* lateral offset from the centre line, units << 8, + right */
    s32 herr;     /* heading relative to the road, 65536 per turn, + right */
    s32 speed;    /* units per frame << 8 */
    s32 lap;      /* laps completed */
    s32 hop;      /* frames left in the air */
    s32 drift;    /* -1/0/+1 while drifting */
    s32 piece;    /* piece hint */
    u32 race_time, finish_time, lap_start;
    u32 lap_times[9];
    u8 finished, offroad, rank, active;
    u16 color, color2;
    Pad pad;
} Kart;
#define SPEED_MAX (56 << 8)

void render_view(int y0, int h, const Kart *me, const Kart *other, int seat);
void draw_kart_sprite(int cx, int base, int w, int vs, u16 body, u16 trim, int clip0, int clip1);

#endif
