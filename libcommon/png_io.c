/* png_io.c — PNG read and write on libpng. libpng reports errors by calling
 * our handler, which longjmps back into the function that set the jump point;
 * everything that must be freed there lives in a heap struct whose pointer is
 * not changed after setjmp, so no local needs to be volatile. */
#include "png_io.h"
#include "atomic_file.h"
#include "common.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

int pngio_compression_level = -1;

/* PNG allows up to 2^31-1 pixels a side; libpng's default limit is 10^6. */
#define PNGIO_MAX_SIDE 1000000
/* Refuse to allocate more than this for one image (a hostile header). */
#define PNGIO_MAX_BYTES ((size_t)1 << 34)

typedef struct pngio_state {
    jmp_buf jb;
    char msg[256];
    int truncated;
    FILE *f;
    png_structp png;
    png_infop info;
    unsigned char *buf;
    png_bytep *rows;
    png_text *texts;
    void *conv;          /* f32 writer's converted pixels */
    atomic_file af;
} pngio_state;

static void on_error(png_structp png, png_const_charp msg) {
    pngio_state *st = png_get_error_ptr(png);
    snprintf(st->msg, sizeof st->msg, "%s", msg);
    longjmp(st->jb, 1);
}

/* libpng's warnings (a known-bad sRGB profile, an ancillary CRC) do not stop a
 * read and are not ours to print on a program's stderr. */
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void read_fn(png_structp png, png_bytep data, size_t n) {
    pngio_state *st = png_get_io_ptr(png);
    if (fread(data, 1, n, st->f) != n) {
        if (ferror(st->f)) png_error(png, strerror(errno));
        st->truncated = 1;
        png_error(png, "unexpected end of file");
    }
}

static int little_endian(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

/* ---- writing ------------------------------------------------------------ */

static int key_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 32 || k[i] > 126) return 0;
        if (k[i] == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

static int is_ascii(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s > 127) return 0;
    return 1;
}

static void write_any(const char *path, const void *pix, int h, int w, int c, int bit_depth,
                      const pngio_text *text, int n_text) {
    if (h < 1 || w < 1 || h > PNGIO_MAX_SIDE || w > PNGIO_MAX_SIDE)
        die("cannot write %s: image size %dx%d is outside 1..%d", path, w, h, PNGIO_MAX_SIDE);
    if (c != 1 && c != 3) die("cannot write %s: %d channels (PNG output is grey, 1, or RGB, 3)", path, c);
    CHECK(n_text >= 0 && (n_text == 0 || text));
    for (int i = 0; i < n_text; i++) {
        if (!text[i].key || !key_ok(text[i].key))
            die("cannot write %s: text key \"%s\" is not 1-79 printable ASCII characters without leading, "
                "trailing or double spaces", path, text[i].key ? text[i].key : "(null)");
        if (!text[i].value) die("cannot write %s: text key \"%s\" has no value", path, text[i].key);
    }

    pngio_state *st = xcalloc(1, sizeof *st);
    atomic_open(&st->af, path);
    st->rows = xmalloc((size_t)h * sizeof *st->rows);
    st->texts = xcalloc((size_t)n_text + 1, sizeof *st->texts);
    st->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, st, on_error, on_warning);
    CHECKF(st->png, "cannot write %s: libpng could not start", path);
    st->info = png_create_info_struct(st->png);
    CHECKF(st->info, "cannot write %s: libpng could not start", path);
    if (setjmp(st->jb)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", st->msg);
        png_destroy_write_struct(&st->png, &st->info);
        atomic_abort(&st->af);
        free(st->rows);
        free(st->texts);
        free(st);
        die("cannot write %s: %s", path, msg);
    }
    png_init_io(st->png, st->af.f);
    if (pngio_compression_level >= 0) png_set_compression_level(st->png, pngio_compression_level);
    png_set_IHDR(st->png, st->info, (png_uint_32)w, (png_uint_32)h, bit_depth,
                 c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < n_text; i++) {
        png_text *t = &st->texts[i];
        /* libpng takes char *, but only reads them. */
        t->key = (char *)text[i].key;
        t->text = (char *)text[i].value;
        if (is_ascii(text[i].value)) {
            t->compression = PNG_TEXT_COMPRESSION_NONE;
            t->text_length = strlen(text[i].value);
        } else {
            t->compression = PNG_ITXT_COMPRESSION_NONE; /* iTXt: UTF-8 */
            t->itxt_length = strlen(text[i].value);
        }
    }
    /* Text before the image data, so a reader that stops early still sees it. */
    if (n_text > 0) png_set_text(st->png, st->info, st->texts, n_text);
    png_write_info(st->png, st->info);
    if (bit_depth == 16 && little_endian()) png_set_swap(st->png); /* PNG is big-endian */
    size_t rowbytes = (size_t)w * (size_t)c * (bit_depth / 8);
    for (int y = 0; y < h; y++) st->rows[y] = (png_bytep)pix + (size_t)y * rowbytes;
    /* png_write_image copies each row before transforming it: pix is not modified. */
    png_write_image(st->png, st->rows);
    png_write_end(st->png, NULL);
    png_destroy_write_struct(&st->png, &st->info);
    atomic_commit(&st->af);
    free(st->rows);
    free(st->texts);
    free(st);
}

void pngio_write_u8(const char *path, const uint8_t *pix, int h, int w, int c, const pngio_text *text, int n_text) {
    write_any(path, pix, h, w, c, 8, text, n_text);
}

void pngio_write_u16(const char *path, const uint16_t *pix, int h, int w, int c, const pngio_text *text,
                     int n_text) {
    write_any(path, pix, h, w, c, 16, text, n_text);
}

void pngio_write_f32(const char *path, const float *img, int c, int h, int w, int bit_depth,
                     const pngio_text *text, int n_text) {
    if (bit_depth != 8 && bit_depth != 16) die("cannot write %s: bit depth %d (8 or 16)", path, bit_depth);
    if (h < 1 || w < 1 || h > PNGIO_MAX_SIDE || w > PNGIO_MAX_SIDE || (c != 1 && c != 3))
        die("cannot write %s: image [%d, %d, %d] is not [1 or 3, 1..%d, 1..%d]", path, c, h, w, PNGIO_MAX_SIDE,
            PNGIO_MAX_SIDE);
    size_t plane = (size_t)h * w, n = plane * c;
    float maxv = bit_depth == 8 ? 255.0f : 65535.0f;
    uint8_t *p8 = bit_depth == 8 ? xmalloc(n) : NULL;
    uint16_t *p16 = bit_depth == 16 ? xmalloc(n * 2) : NULL;
    /* [c, h, w] -> [h, w, c]; lrintf rounds half to even in the default mode, like numpy's round. */
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < c; ch++) {
            float v = img[(size_t)ch * plane + i];
            v = v > 0 ? (v < 1 ? v : 1) : 0; /* NaN fails v > 0 and becomes 0 */
            long q = lrintf(v * maxv);
            if (p8) p8[i * c + ch] = (uint8_t)q;
            else p16[i * c + ch] = (uint16_t)q;
        }
    if (p8) pngio_write_u8(path, p8, h, w, c, text, n_text);
    else pngio_write_u16(path, p16, h, w, c, text, n_text);
    free(p8);
    free(p16);
}

/* ---- reading ------------------------------------------------------------ */

/* tEXt and zTXt are Latin-1: re-encode as UTF-8 (at most twice as long). */
static char *latin1_to_utf8(const char *s, size_t n) {
    char *o = xmalloc(2 * n + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x80) *p++ = (char)ch;
        else { *p++ = (char)(0xc0 | (ch >> 6)); *p++ = (char)(0x80 | (ch & 0x3f)); }
    }
    *p = 0;
    return o;
}

static void free_read_state(pngio_state *st) {
    png_destroy_read_struct(&st->png, &st->info, NULL);
    if (st->f) fclose(st->f);
    free(st->buf);
    free(st->rows);
    free(st);
}

pngio_image *pngio_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t got = fread(sig, 1, 8, f);
    if (got < 8 || png_sig_cmp(sig, 0, 8) != 0) {
        int prefix = got > 0 && png_sig_cmp(sig, 0, got) == 0;
        fclose(f);
        if (prefix) die("%s: truncated PNG file", path);
        die("%s: not a PNG file", path);
    }

    pngio_state *st = xcalloc(1, sizeof *st);
    pngio_image *im = xcalloc(1, sizeof *im);
    st->f = f;
    st->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, on_error, on_warning);
    CHECKF(st->png, "cannot read %s: libpng could not start", path);
    st->info = png_create_info_struct(st->png);
    CHECKF(st->info, "cannot read %s: libpng could not start", path);
    if (setjmp(st->jb)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", st->msg);
        int truncated = st->truncated;
        free_read_state(st);
        pngio_image_free(im);
        if (truncated) die("%s: truncated PNG file", path);
        die("%s: corrupt PNG file: %s", path, msg);
    }
    png_set_read_fn(st->png, st, read_fn);
    png_set_sig_bytes(st->png, 8);
    png_set_user_limits(st->png, PNGIO_MAX_SIDE, PNGIO_MAX_SIDE);
    png_read_info(st->png, st->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(st->png, st->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(st->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(st->png);
    if (depth == 16 && little_endian()) png_set_swap(st->png);
    png_set_interlace_handling(st->png);
    png_read_update_info(st->png, st->info);

    /* After the expansions: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; 8 or 16 bits. */
    int in_c = png_get_channels(st->png, st->info);
    int bits = png_get_bit_depth(st->png, st->info);
    size_t rowbytes = png_get_rowbytes(st->png, st->info);
    if ((bits != 8 && bits != 16) || in_c < 1 || in_c > 4 || rowbytes != (size_t)w * in_c * (bits / 8))
        png_error(st->png, "unsupported pixel layout");
    if ((size_t)h * rowbytes > PNGIO_MAX_BYTES) png_error(st->png, "image too large");
    st->buf = xmalloc((size_t)h * rowbytes);
    st->rows = xmalloc((size_t)h * sizeof *st->rows);
    for (png_uint_32 y = 0; y < h; y++) st->rows[y] = st->buf + (size_t)y * rowbytes;
    png_read_image(st->png, st->rows);
    png_read_end(st->png, st->info); /* text chunks after the image data land in info too */

    int c = in_c >= 3 ? 3 : 1; /* alpha dropped */
    im->bit_depth = bits;
    im->pixels = tensor_new(bits == 16 ? DTYPE_I32 : DTYPE_U8, 3, (int64_t[]){h, w, c});
    size_t npix = (size_t)h * w;
    if (bits == 8) {
        uint8_t *o = im->pixels->data;
        for (size_t i = 0; i < npix; i++)
            for (int ch = 0; ch < c; ch++) o[i * c + ch] = st->buf[i * in_c + ch];
    } else {
        int32_t *o = im->pixels->data;
        const uint16_t *s = (const uint16_t *)st->buf;
        for (size_t i = 0; i < npix; i++)
            for (int ch = 0; ch < c; ch++) o[i * c + ch] = s[i * in_c + ch];
    }

    png_textp t = NULL;
    int nt = png_get_text(st->png, st->info, &t, NULL);
    im->text = xcalloc((size_t)nt + 1, sizeof *im->text);
    for (int i = 0; i < nt; i++) {
        int utf8 = t[i].compression == PNG_ITXT_COMPRESSION_NONE || t[i].compression == PNG_ITXT_COMPRESSION_zTXt;
        size_t len = utf8 ? t[i].itxt_length : t[i].text_length;
        im->text[i].key = latin1_to_utf8(t[i].key, strlen(t[i].key));
        im->text[i].value = utf8 ? xstrdup(t[i].text ? t[i].text : "") : latin1_to_utf8(t[i].text, len);
        im->n_text = i + 1;
    }
    free_read_state(st);
    return im;
}

void pngio_image_free(pngio_image *im) {
    if (!im) return;
    for (int i = 0; i < im->n_text; i++) {
        free((char *)im->text[i].key);
        free((char *)im->text[i].value);
    }
    free(im->text);
    tensor_free(im->pixels);
    free(im);
}

const char *pngio_text_get(const pngio_image *im, const char *key) {
    for (int i = 0; i < im->n_text; i++)
        if (!strcmp(im->text[i].key, key)) return im->text[i].value;
    return NULL;
}

tensor *pngio_to_f32_chw(const tensor *hwc, int bit_depth) {
    CHECKF(hwc->ndim == 3 && (hwc->dtype == DTYPE_U8 || hwc->dtype == DTYPE_I32),
           "pngio_to_f32_chw: pixels must be [h, w, c] u8 or i32");
    int64_t h = hwc->shape[0], w = hwc->shape[1], c = hwc->shape[2];
    tensor *o = tensor_new_f32(3, (int64_t[]){c, h, w});
    float *out = o->data;
    float scale = 1.0f / (bit_depth == 16 ? 65535.0f : 255.0f);
    size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++)
        for (int64_t ch = 0; ch < c; ch++) {
            size_t src = i * c + ch;
            float v = hwc->dtype == DTYPE_U8 ? ((const uint8_t *)hwc->data)[src] : (float)((const int32_t *)hwc->data)[src];
            out[ch * plane + i] = v * scale;
        }
    return o;
}

char *pngio_file_name(const char *id) {
    char *o = xmalloc(strlen(id) + 5), *p = o;
    int in_utf8 = 0;
    for (const unsigned char *s = (const unsigned char *)id; *s; s++) {
        unsigned char ch = *s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
            ch == '_' || ch == '-') {
            *p++ = (char)ch;
            in_utf8 = 0;
        } else if (ch >= 0x80 && ch < 0xc0 && in_utf8) {
            continue; /* a continuation byte of a character already replaced */
        } else {
            *p++ = '_';
            in_utf8 = ch >= 0xc0;
        }
    }
    strcpy(p, ".png");
    return o;
}
