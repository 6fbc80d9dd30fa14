/* jpeg_io.c — JPEG decoding with libjpeg. The error manager longjmps back
 * into jpegio_read; the decompressor and buffers live in a heap struct whose
 * pointer does not change after setjmp, so nothing needs to be volatile. */
#include "jpeg_io.h"
#include "common.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct jpegio_state {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;   /* must stay the first thing cinfo.err points at */
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
    int started;
    FILE *f;
    tensor *out;
} jpegio_state;

static jpegio_state *state_of(j_common_ptr cinfo) {
    return (jpegio_state *)((char *)cinfo->err - offsetof(jpegio_state, jerr));
}

static void on_error_exit(j_common_ptr cinfo) {
    jpegio_state *st = state_of(cinfo);
    cinfo->err->format_message(cinfo, st->msg);
    longjmp(st->jb, 1);
}

/* Level -1 is a warning about corrupt data, which libjpeg would paper over
 * (a truncated file comes back padded with grey): treat it as an error.
 * Trace messages (level >= 0) are ignored. */
static void on_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) return;
    jpegio_state *st = state_of(cinfo);
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) st->truncated = 1;
    on_error_exit(cinfo);
}

tensor *jpegio_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s: %s", path, strerror(errno));
    unsigned char sig[3];
    size_t got = fread(sig, 1, 3, f);
    if (got < 3 || sig[0] != 0xff || sig[1] != 0xd8 || sig[2] != 0xff) {
        int prefix = (got >= 1 && sig[0] == 0xff) && (got < 2 || sig[1] == 0xd8) && got < 3;
        fclose(f);
        if (prefix) die("%s: truncated JPEG file", path);
        die("%s: not a JPEG file", path);
    }
    rewind(f);

    jpegio_state *st = xcalloc(1, sizeof *st);
    st->f = f;
    st->cinfo.err = jpeg_std_error(&st->jerr);
    st->jerr.error_exit = on_error_exit;
    st->jerr.emit_message = on_emit_message;
    if (setjmp(st->jb)) {
        char msg[JMSG_LENGTH_MAX];
        snprintf(msg, sizeof msg, "%s", st->msg);
        int truncated = st->truncated;
        jpeg_destroy_decompress(&st->cinfo);
        fclose(st->f);
        tensor_free(st->out);
        free(st);
        if (truncated) die("%s: truncated JPEG file", path);
        die("%s: corrupt JPEG file: %s", path, msg);
    }
    jpeg_create_decompress(&st->cinfo);
    jpeg_stdio_src(&st->cinfo, st->f);
    jpeg_read_header(&st->cinfo, TRUE);

    int c;
    switch (st->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: st->cinfo.out_color_space = JCS_GRAYSCALE; c = 1; break;
    case JCS_YCbCr:
    case JCS_RGB: st->cinfo.out_color_space = JCS_RGB; c = 3; break;
    default:
        snprintf(st->msg, sizeof st->msg, "colour space %d (CMYK/YCCK) is not supported; convert it to RGB",
                 (int)st->cinfo.jpeg_color_space);
        longjmp(st->jb, 1);
    }
    jpeg_start_decompress(&st->cinfo);
    JDIMENSION w = st->cinfo.output_width, h = st->cinfo.output_height;
    if (st->cinfo.output_components != c) {
        snprintf(st->msg, sizeof st->msg, "%d output components, expected %d", st->cinfo.output_components, c);
        longjmp(st->jb, 1);
    }
    st->out = tensor_new(DTYPE_U8, 3, (int64_t[]){h, w, c});
    unsigned char *pix = st->out->data;
    while (st->cinfo.output_scanline < h) {
        JSAMPROW row = pix + (size_t)st->cinfo.output_scanline * w * c;
        jpeg_read_scanlines(&st->cinfo, &row, 1);
    }
    jpeg_finish_decompress(&st->cinfo);
    jpeg_destroy_decompress(&st->cinfo);
    fclose(st->f);
    tensor *out = st->out;
    free(st);
    return out;
}
