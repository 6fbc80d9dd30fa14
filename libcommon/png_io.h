/* png_io.h — PNG files for the pipeline's images (libpng): writing 8- or
 * 16-bit grey or RGB with text chunks (the report, seed and model travel with
 * the picture), atomically; reading any PNG back to grey or RGB pixels with
 * its text. Every error names the file; a corrupt file is an error, never a
 * crash. Pixel buffers are interleaved [H, W, C], as PNG stores them. */
#ifndef SYNTHCXR_PNG_IO_H
#define SYNTHCXR_PNG_IO_H

#include "tensor.h"

#include <stdint.h>

/* One text chunk: key 1-79 printable ASCII characters (no leading, trailing
 * or double spaces, as PNG requires); value UTF-8 of any length. An ASCII value is written as
 * tEXt, any other as iTXt (UTF-8), so nothing is lost. */
typedef struct pngio_text {
    const char *key;
    const char *value;
} pngio_text;

/* Write pix [h, w, c] (c = 1 grey or 3 RGB) with n_text text chunks to path,
 * under a temporary name renamed into place. Dies naming path on bad
 * arguments or I/O errors. u16 samples are host-order values 0..65535. */
/* zlib level for the writers: -1 (default) is libpng's own (6); a program
 * writing thousands of images it can remake from a seed may trade file size
 * for speed (cxrphantom uses 1). Pixels are the same at every level. */
extern int pngio_compression_level;

void pngio_write_u8(const char *path, const uint8_t *pix, int h, int w, int c, const pngio_text *text, int n_text);
void pngio_write_u16(const char *path, const uint16_t *pix, int h, int w, int c, const pngio_text *text,
                     int n_text);
/* img [c, h, w] (PyTorch layout) in [0, 1] -> bit_depth 8 or 16: each value is
 * clamped to [0, 1] (NaN -> 0), times 255 (or 65535), rounded half to even —
 * what diffusers' numpy_to_pil does with (x * 255).round(). */
void pngio_write_f32(const char *path, const float *img, int c, int h, int w, int bit_depth,
                     const pngio_text *text, int n_text);

/* A PNG as read. Conversions: palette -> RGB; grey of 1, 2 or 4 bits -> 8-bit
 * grey scaled to 0..255 (as libpng and Pillow do); an alpha channel (grey+alpha,
 * RGBA) and tRNS transparency are dropped, not composited; interlaced files
 * are de-interlaced. 16-bit files keep all 16 bits as i32 values 0..65535
 * (the tensor type has no u16); everything else is u8. Samples are as stored:
 * no gamma (gAMA) or colour-profile (iCCP, sRGB) conversion, as Pillow. */
typedef struct pngio_image {
    tensor *pixels;     /* [h, w, c], c = 1 or 3; u8, or i32 when bit_depth is 16 */
    int bit_depth;      /* 8 or 16 */
    int n_text;
    pngio_text *text;   /* every tEXt, zTXt and iTXt chunk, in file order, as UTF-8 */
} pngio_image;

/* Reads path; dies "<path>: not a PNG file", "<path>: truncated PNG file",
 * "<path>: corrupt PNG file: <libpng's reason>" or "cannot open <path>: ...". */
pngio_image *pngio_read(const char *path);
void pngio_image_free(pngio_image *im);                        /* NULL is fine */
/* The value of the first text chunk with this key, or NULL. */
const char *pngio_text_get(const pngio_image *im, const char *key);

/* The file name of a record's image, "<id>.png", with every character of id
 * outside A-Z a-z 0-9 . _ - replaced by '_' (a multi-byte UTF-8 character by
 * one '_'), so that no id can name a file outside the output folder. One rule
 * for lat2png, which writes the file, and rep2lat --skip-existing, which looks
 * for it. Returns a malloc'ed string. */
char *pngio_file_name(const char *id);

/* Pixels [h, w, c] (u8 or i32 as read) -> a new f32 tensor [c, h, w] in [0, 1]
 * (divided by 255, or 65535 when bit_depth is 16). */
tensor *pngio_to_f32_chw(const tensor *hwc, int bit_depth);

#endif
