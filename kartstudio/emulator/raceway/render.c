/* The behind-the-kart view: a per-scanline projected road.
 *
 * Each ground row r (1 = just below the horizon, R = the bottom of the view) sees the road at a
 * fixed depth z(r) = 500 R / r and draws it at a scale proportional to r. Walking the rows from
 * the bottom up walks the track forwards from the camera: the centre line's sideways position
 * x is integrated from the road's heading relative to the camera (x += sin(th) dz), and the
 * heading from the pieces' curvature (th += curv dz). A row is then a handful of spans: grass,
 * rumble strip, road, edge lines, centre line. Posts, curve signs and the other kart are noted
 * on the way up and drawn far to near afterwards. All integer. */
#include "raceway.h"

#define CAM_BACK 600  /* the camera sits this far behind its kart */
#define ZMAX 30000    /* draw distance */
#define MAX_OBJS 48

static s32 ztab[2][161], sctab[2][161]; /* [0]: 80 ground rows (2P), [1]: 160 (1P) */
static u8 mountains[512];

enum { OBJ_POST, OBJ_SIGN, OBJ_KART, OBJ_LINE };
typedef struct {
    s16 y, kind, dir;
    s32 x;   /* centre line (or kart) position relative to the camera, units */
    s32 sc;  /* pixels per unit << 16 */
} Obj;

void render_init(void) {
    for (int m = 0; m < 2; m++) {
        int R = m ? 160 : 80;
        for (int r = 1; r <= R; r++) {
            ztab[m][r] = 500 * R / r;
            sctab[m][r] = 8960 * r / R; /* 140 px for the road's half width at the bottom row */
        }
    }
    /* a skyline of summed triangle waves: fixed, so the view pans across it as the kart turns */
    for (int i = 0; i < 512; i++) {
        int a = iabs((i * 3) % 128 - 64), b = iabs((i * 7 + 40) % 90 - 45), c = iabs((i * 13 + 11) % 46 - 23);
        mountains[i] = (u8)((a * 10 + b * 9 + c * 5) / 64);
    }
}

static const u16 C_SKY_TOP = RGB(70, 130, 225), C_SKY_MID = RGB(110, 165, 240), C_SKY_LOW = RGB(160, 200, 248);
static const u16 C_MOUNT = RGB(84, 112, 140), C_MOUNT_SNOW = RGB(220, 225, 235);
static const u16 C_GRASS[2] = {RGB(48, 160, 48), RGB(36, 132, 36)};
static const u16 C_RUMBLE[2] = {RGB(220, 30, 30), RGB(240, 240, 240)};
static const u16 C_ROAD[2] = {RGB(104, 104, 110), RGB(94, 94, 100)};
static const u16 C_LINE = RGB(245, 245, 245), C_CENTRE = RGB(250, 215, 40), C_FOG = RGB(60, 140, 60);

static inline s32 px(s32 units, s32 sc) { return (units * sc) >> 16; }

void draw_kart_sprite(int cx, int base, int w, int vs, u16 body, u16 trim, int c0, int c1) {
    /* a kart seen from behind, in a 16 x 10 grid: shadow, rear wheels, body, bumper, driver */
    static const s8 parts[][5] = {
        /* x0 x1 y0 y1 colour: 0 shadow, 1 tyre, 2 body, 3 trim, 4 helmet, 5 visor */
        {1, 15, 9, 10, 0}, {0, 4, 5, 10, 1}, {12, 16, 5, 10, 1}, {3, 13, 3, 8, 2},
        {2, 14, 7, 9, 3}, {6, 10, 0, 4, 4}, {7, 9, 1, 2, 5}, {5, 11, 3, 5, 3},
    };
    u16 colours[6] = {RGB(30, 60, 30), RGB(20, 20, 20), body, trim, RGB(250, 250, 250), RGB(30, 30, 60)};
    if (w < 2) w = 2;
    int h = w * 5 * vs / 16;
    if (h < 2) h = 2;
    int top = base - h;
    for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const s8 *p = parts[i];
        int x0 = cx + (p[0] - 8) * w / 16, x1 = cx + (p[1] - 8) * w / 16;
        int y0 = top + p[2] * h / 10, y1 = top + p[3] * h / 10;
        if (x1 == x0) x1++;
        if (y1 == y0) y1++;
        rect(x0, y0, x1 - x0, y1 - y0, colours[(int)p[4]], c0, c1);
    }
}

static void draw_obj(const Obj *o, const Kart *other, int vs, int c0, int c1) {
    int cx = SCREEN_W / 2 + px(clampi(o->x, -200000, 200000), o->sc);
    if (o->kind == OBJ_POST) {
        int w = px(90, o->sc), h = px(700, o->sc) * vs;
        if (w < 1) w = 1;
        if (h < 2) h = 2;
        for (int side = -1; side <= 1; side += 2) {
            int x = cx + side * px(POST_LAT, o->sc) - w / 2;
            rect(x, o->y - h + 1, w, h, RGB(245, 245, 245), c0, c1);
            rect(x, o->y - h + 1, w, h / 4 + 1, RGB(220, 40, 40), c0, c1);
        }
    } else if (o->kind == OBJ_SIGN) {
        /* a chevron board on the outside of a curve, pointing the way it turns */
        int w = px(520, o->sc), h = px(300, o->sc) * vs, lift = px(260, o->sc) * vs;
        if (w < 2) w = 2;
        if (h < 2) h = 2;
        int x = cx - o->dir * px(1550, o->sc) - w / 2, top = o->y - lift - h;
        rect(x + w / 2 - 1, o->y - lift, 2, lift + 1, RGB(60, 60, 60), c0, c1);
        rect(x, top, w, h, RGB(250, 210, 20), c0, c1);
        for (int k = 0; k < 3; k++) { /* three stacked bars offset towards the turn make an arrow */
            int bw = w / 2, bh = h / 5 + 1;
            int off = (k == 1 ? w / 3 : w / 8);
            int bx = o->dir > 0 ? x + off : x + w - off - bw;
            rect(bx, top + (k + 1) * h / 5 - bh / 2, bw, bh, RGB(20, 20, 20), c0, c1);
        }
    } else if (o->kind == OBJ_KART) {
        int w = px(480, o->sc);
        draw_kart_sprite(cx, o->y - other->hop / 2 * vs, w, vs, other->color, other->color2, c0, c1);
    } else if (o->kind == OBJ_LINE) {
        /* the start/finish banner: two poles and a chequered band */
        int h = px(900, o->sc) * vs, half = px(1300, o->sc), bh = px(160, o->sc) * vs + 1;
        rect(cx - half - 1, o->y - h, 2, h, RGB(200, 200, 200), c0, c1);
        rect(cx + half - 1, o->y - h, 2, h, RGB(200, 200, 200), c0, c1);
        int cell = px(160, o->sc) + 1;
        for (int x = cx - half, k = 0; x < cx + half; x += cell, k++)
            rect(x, o->y - h, cell, bh, (k & 1) ? RGB(20, 20, 20) : RGB(250, 250, 250), c0, c1);
    }
}

static void hud(int y0, int h, const Kart *me, int seat, int players) {
    char buf[24], *p;
    int big = h >= 200 ? 2 : 1;
    u16 white = RGB(255, 255, 255), shadow = RGB(20, 20, 20);
    extern int race_laps;
    int lap = me->lap + 1 > race_laps ? race_laps : me->lap + 1;
    p = buf; *p++ = 'L'; *p++ = 'A'; *p++ = 'P'; *p++ = ' ';
    p = fmt_int(p, lap, 1); *p++ = '/'; fmt_int(p, race_laps, 1);
    text(7, y0 + 5, buf, shadow, 1, big);
    text(6, y0 + 4, buf, white, 1, big);
    fmt_time(buf, me->finished ? me->finish_time : me->race_time);
    text(SCREEN_W - 6 - text_width(buf, 1) + 1, y0 + 5, buf, shadow, 1, big);
    text(SCREEN_W - 6 - text_width(buf, 1), y0 + 4, buf, white, 1, big);
    if (players == 2) {
        const char *pos = me->rank == 1 ? "1ST" : "2ND";
        text(SCREEN_W - 8 - text_width(pos, 2), y0 + h - 8 - 14 * big, pos,
             me->rank == 1 ? RGB(255, 220, 40) : RGB(200, 200, 220), 2, 2 * big);
    }
    buf[0] = 'P'; buf[1] = (char)('0' + seat); buf[2] = 0;
    text(6, y0 + h - 6 - 7 * big, buf, seat == 1 ? RGB(255, 90, 90) : RGB(90, 160, 255), 1, big);
    /* speed bar */
    int bar = me->speed * 60 / SPEED_MAX;
    rect(20, y0 + h - 6 - 5 * big, 62, 4 * big, shadow, y0, y0 + h);
    rect(21, y0 + h - 5 - 5 * big, bar, 2 * big, RGB(255, 200, 40), y0, y0 + h);
}

void render_view(int y0, int h, const Kart *me, const Kart *other, int seat) {
    extern int players;
    int m = h > 150, R = h - h / 3, hz = h / 3, vs = m ? 2 : 1;
    int y_end = y0 + h;
    s32 L = track.length;

    /* sky in three bands and a skyline that pans with the camera's heading */
    s32 heading = track_heading(me->s >> 8, me->piece) + me->herr;
    int off = (int)(((u32)heading >> 7) & 511);
    fill_rows(y0, y0 + hz / 3, C_SKY_TOP);
    fill_rows(y0 + hz / 3, y0 + 2 * hz / 3, C_SKY_MID);
    fill_rows(y0 + 2 * hz / 3, y0 + hz, C_SKY_LOW);
    u16 *row0 = fb + (y0 + hz - 1) * SCREEN_W;
    /* two pixels per store: the skyline is drawn in 2-pixel columns */
    u32 rock = (u32)C_MOUNT << 16 | C_MOUNT, snow = (u32)C_MOUNT_SNOW << 16 | C_MOUNT_SNOW;
    for (int x = 0; x < SCREEN_W; x += 2) {
        int mh = mountains[(x + off) & 511] * vs;
        int cap = mh > 13 * vs ? mh - 3 * vs : mh;
        u32 *p = (u32 *)(row0 + x);
        int k = 0;
        for (; k < cap; k++, p -= SCREEN_W / 2) *p = rock;
        for (; k < mh; k++, p -= SCREEN_W / 2) *p = snow;
    }

    /* the ground, bottom row first */
    Obj objs[MAX_OBJS];
    int nobj = 0;
    s32 s_cam = (me->s >> 8) - CAM_BACK;
    if (s_cam < 0) s_cam += L;
    int pi = track_piece(s_cam, me->piece);
    s32 pend = track.p[pi].start + track.p[pi].len;
    s32 s = s_cam, z = 0, x = -(me->lat >> 8);
    s32 th8 = -me->herr << 8;
    s32 other_d = -1;
    if (other && other->active) {
        other_d = (other->s >> 8) - s_cam;
        if (other_d < 0) other_d += L;
    }
    for (int r = R; r >= 1; r--) {
        int y = y0 + hz + r - 1;
        s32 zn = ztab[m][r];
        if (zn > ZMAX) {
            for (; r >= 1; r--) span(y0 + hz + r - 1, 0, SCREEN_W, C_FOG);
            break;
        }
        s32 dz = zn - z;
        x += (isin(th8 >> 8) * dz) >> 14;
        th8 += track.p[pi].curv * dz;
        s32 s_prev = s;
        s += dz;
        int wrapped = 0;
        while (s >= pend) {
            pi++;
            if (pi == track.n) { pi = 0; s -= L; s_prev -= L; pend = 0; wrapped = 1; }
            pend = track.p[pi].start + track.p[pi].len;
            if (track.p[pi].curv && nobj < MAX_OBJS)
                objs[nobj++] = (Obj){(s16)y, OBJ_SIGN, (s16)(track.p[pi].curv > 0 ? 1 : -1), x, sctab[m][r]};
        }
        if (wrapped && nobj < MAX_OBJS) objs[nobj++] = (Obj){(s16)y, OBJ_LINE, 0, x, sctab[m][r]};
        if ((s / POST_EVERY) != ((s_prev < 0 ? s_prev - POST_EVERY : s_prev) / POST_EVERY) && nobj < MAX_OBJS)
            objs[nobj++] = (Obj){(s16)y, OBJ_POST, 0, x, sctab[m][r]};
        if (other_d > z && other_d <= zn && nobj < MAX_OBJS && other_d > CAM_BACK)
            objs[nobj++] = (Obj){(s16)y, OBJ_KART, 0, x + (other->lat >> 8), sctab[m][r]};
        z = zn;

        s32 sc = sctab[m][r];
        int cx = SCREEN_W / 2 + px(clampi(x, -200000, 200000), sc);
        int wr = px(RUMBLE_OUT, sc), wd = px(ROAD_HALF, sc), we0 = px(990, sc), we1 = px(930, sc), wc = px(36, sc);
        u16 g = C_GRASS[(s >> 11) & 1], rb = C_RUMBLE[(s >> 9) & 1];
        u16 rd = s < 260 ? C_LINE : C_ROAD[(s >> 11) & 1];
        span(y, 0, cx - wr, g);
        span(y, cx - wr, cx - wd, rb);
        span(y, cx - wd, cx - we0, rd);
        span(y, cx - we0, cx - we1, C_LINE);
        span(y, cx - we1, cx - wc, rd);
        span(y, cx - wc, cx + wc, ((s >> 10) & 1) ? C_CENTRE : rd);
        span(y, cx + wc, cx + we1, rd);
        span(y, cx + we1, cx + we0, C_LINE);
        span(y, cx + we0, cx + wd, rd);
        span(y, cx + wd, cx + wr, rb);
        span(y, cx + wr, SCREEN_W, g);
    }
    for (int i = nobj - 1; i >= 0; i--) draw_obj(&objs[i], other, vs, y0, y_end);

    /* our own kart, where the road is CAM_BACK ahead of the camera */
    int rk = 500 * R / CAM_BACK;
    int w = px(480, sctab[m][rk]);
    draw_kart_sprite(SCREEN_W / 2 + (me->drift * 4), y0 + hz + rk - 1 - me->hop / 2 * vs, w, vs, me->color, me->color2,
                     y0, y_end);
    hud(y0, h, me, seat, players);
}
