/* utf8.c — UTF-8 decode/encode and Unicode range tables (utf8.h). */
#include "utf8.h"

uint32_t utf8_next(const unsigned char **sp, const unsigned char *end) {
    const unsigned char *s = *sp;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0 || end - s <= n) { *sp = s + 1; return 0xfffd; }
    c = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xc0) != 0x80) { *sp = s + 1; return 0xfffd; }
        c = (c << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c < 0xe000)) { *sp = s + 1; return 0xfffd; }
    *sp = s + n + 1;
    return c;
}

int utf8_put(unsigned char *o, uint32_t c) {
    if (c < 0x80) { o[0] = (unsigned char)c; return 1; }
    if (c < 0x800) { o[0] = (unsigned char)(0xc0 | (c >> 6)); o[1] = (unsigned char)(0x80 | (c & 0x3f)); return 2; }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (c >> 12)); o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (c >> 18)); o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f)); o[3] = (unsigned char)(0x80 | (c & 0x3f));
    return 4;
}

int unicode_in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

const uint32_t *unicode_find_row(const uint32_t *t, size_t rows, size_t k, uint32_t c) {
    size_t lo = 0, hi = rows;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < t[mid * k]) hi = mid;
        else if (c > t[mid * k]) lo = mid + 1;
        else return t + mid * k;
    }
    return NULL;
}
