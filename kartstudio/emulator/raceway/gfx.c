/* Drawing into the CPU framebuffer, a 5x7 font, number formatting, the sine table,
 * and the memset/memcpy that gcc may call on its own in freestanding code. */
#include "raceway.h"

u16 *fb;
s16 sintab[1024];

void *memset(void *d, int c, unsigned n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}

void *memcpy(void *d, const void *s, unsigned n) {
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}

/* Integer sine (Bhaskara's approximation, within 0.2%): no floats anywhere in the game. */
void math_init(void) {
    for (int i = 0; i < 512; i++) {
        int q = i * (512 - i);                       /* t(1-t) scaled by 512^2 */
        int v = (q << 14) / ((327680 - q) >> 2);     /* 16 t(1-t) / (5 - 4 t(1-t)), * 16384 */
        sintab[i] = (s16)v;
        sintab[i + 512] = (s16)-v;
    }
}

/* Fills with 32-bit stores where it can: a row of 320 pixels is 160 stores. */
void span(int y, int x0, int x1, u16 c) {
    if (x0 < 0) x0 = 0;
    if (x1 > SCREEN_W) x1 = SCREEN_W;
    if (x0 >= x1 || (unsigned)y >= SCREEN_H) return;
    u16 *p = fb + y * SCREEN_W + x0;
    int n = x1 - x0;
    if (x0 & 1) { *p++ = c; n--; }
    u32 *w = (u32 *)p;
    u32 cc = (u32)c << 16 | c;
    int pairs = n >> 1;
    while (pairs >= 4) { w[0] = cc; w[1] = cc; w[2] = cc; w[3] = cc; w += 4; pairs -= 4; }
    for (; pairs > 0; pairs--) *w++ = cc;
    if (n & 1) *(u16 *)w = c;
}

void fill_rows(int y0, int y1, u16 c) {
    for (int y = y0; y < y1; y++) span(y, 0, SCREEN_W, c);
}

void rect(int x, int y, int w, int h, u16 c, int clip_y0, int clip_y1) {
    int y1 = y + h;
    if (y < clip_y0) y = clip_y0;
    if (y1 > clip_y1) y1 = clip_y1;
    for (; y < y1; y++) span(y, x, x + w, c);
}

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. Our own design. */
static const u8 glyphs[][7] = {
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}, /* 0 */
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* 1 */
    {0x0E, 0x11, 0x01, 0x06, 0x08, 0x10, 0x1F}, /* 2 */
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}, /* 3 */
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}, /* 4 */
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}, /* 5 */
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}, /* 6 */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}, /* 7 */
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}, /* 8 */
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}, /* 9 */
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* A */
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}, /* B */
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}, /* C */
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}, /* D */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}, /* E */
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}, /* F */
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}, /* G */
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}, /* H */
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}, /* L */
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}, /* N */
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* O */
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}, /* P */
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}, /* Q */
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}, /* R */
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}, /* S */
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}, /* W */
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}, /* X */
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}, /* Y */
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}, /* Z */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}, /* . */
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}, /* : */
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}, /* + */
    {0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10}, /* / */
    {0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x1B, 0x09, 0x12, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x08, 0x0C, 0x0E, 0x0F, 0x0E, 0x0C, 0x08}, /* > */
    {0x02, 0x06, 0x0E, 0x1E, 0x0E, 0x06, 0x02}, /* < */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}, /* ! */
    {0x0A, 0x1F, 0x0A, 0x0A, 0x1F, 0x0A, 0x00}, /* # */
};

static int glyph_index(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'A' && ch <= 'Z') return 10 + ch - 'A';
    if (ch >= 'a' && ch <= 'z') return 10 + ch - 'a';
    switch (ch) {
    case '.': return 36; case ':': return 37; case '-': return 38; case '+': return 39;
    case '/': return 40; case '\'': return 41; case '"': return 42; case '>': return 43;
    case '<': return 44; case '!': return 45; case '#': return 46;
    }
    return -1;
}

int text_width(const char *s, int sx) {
    int n = 0;
    while (*s++) n++;
    return n * 6 * sx - sx;
}

int text(int x, int y, const char *s, u16 c, int sx, int sy) {
    for (; *s; s++, x += 6 * sx) {
        int g = glyph_index(*s);
        if (g < 0) continue;
        if (x >= 0 && y >= 0 && x + 5 * sx <= SCREEN_W && y + 7 * sy <= SCREEN_H) {
            /* wholly on screen: plot straight into the framebuffer (a rect per dot cost a quarter of a frame) */
            u16 *base = fb + y * SCREEN_W + x;
            for (int row = 0; row < 7; row++) {
                u8 bits = glyphs[g][row];
                for (int col = 0; bits && col < 5; col++, bits = (u8)(bits << 1) & 0x1F) {
                    if (!(bits & 0x10)) continue;
                    u16 *p = base + (row * sy) * SCREEN_W + col * sx;
                    for (int yy = 0; yy < sy; yy++, p += SCREEN_W)
                        for (int xx = 0; xx < sx; xx++) p[xx] = c;
                }
            }
            continue;
        }
        for (int row = 0; row < 7; row++) {
            u8 bits = glyphs[g][row];
            for (int col = 0; col < 5; col++)
                if (bits & (0x10 >> col))
                    rect(x + col * sx, y + row * sy, sx, sy, c, 0, SCREEN_H);
        }
    }
    return x;
}

void text_centred(int cx, int y, const char *s, u16 c, int sx, int sy) {
    text(cx - text_width(s, sx) / 2, y, s, c, sx, sy);
}

/* Writes v (>= 0) with at least min_digits digits; returns the end (NUL written). */
char *fmt_int(char *out, int v, int min_digits) {
    char tmp[12];
    int n = 0;
    if (v < 0) { *out++ = '-'; v = -v; }
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n < min_digits) tmp[n++] = '0';
    while (n) *out++ = tmp[--n];
    *out = 0;
    return out;
}

char *fmt_time(char *out, u32 frames) {
    u32 cs = frames * 100 / 60; /* the game runs 60 frames a second */
    out = fmt_int(out, (int)(cs / 6000), 1);
    *out++ = '\'';
    out = fmt_int(out, (int)(cs / 100 % 60), 2);
    *out++ = '"';
    return fmt_int(out, (int)(cs % 100), 2);
}
