/* image_prep.h — a radiograph file made ready for pre-training as the MGCA
 * recipe prepares it (mgca/datasets/utils.py: cv2.imread grey, resize_img):
 * decoded to 8-bit grey, the longer side resized to `size` with OpenCV's
 * INTER_AREA, the shorter one to int(side * size / longer), and zero-padded
 * to size x size, the padding split floor/ceil (top/left gets the smaller
 * half). The resize reproduces cv2.resize(INTER_AREA) on u8: exact area
 * averaging when shrinking (float weights as OpenCV, and its integer-factor
 * fast path), OpenCV's fixed-point "area-mode" bilinear when enlarging; see
 * image_prep.c for the rounding it follows. Equal to OpenCV 5.0 on every
 * tested case (tests/unit/test_image_prep.c). */
#ifndef SYNTHCXR_IMAGE_PREP_H
#define SYNTHCXR_IMAGE_PREP_H

#include "tensor.h"

#include <stddef.h>
#include <stdint.h>

/* Reads a PNG (any bit depth, grey, RGB, palette; alpha dropped) or JPEG
 * (told apart by their signatures, not the file name) into a new u8 tensor
 * [h, w] of grey: grey 8-bit as stored, 16-bit samples >> 8 (what
 * cv2.imread(path, IMREAD_GRAYSCALE) gives), RGB by OpenCV's
 * cvtColor(RGB2GRAY) fixed point, (9798 R + 19235 G + 3735 B + 2^14) >> 15.
 * Dies naming path when the file cannot be opened or decoded. */
tensor *image_load_grey(const char *path);

/* cv2.resize(in, (ow, oh), interpolation=INTER_AREA) for one u8 channel.
 * in [h, w], out [oh, ow]; every side >= 1. */
void image_resize_area_u8(uint8_t *out, int oh, int ow, const uint8_t *in, int h, int w);

/* MGCA's resize_img(in, size): out [size, size]; in [h, w] grey. When h >= w
 * the height becomes size and the width int(w * size / h) (at least 1; a
 * sliver that MGCA's cv2 call would refuse); else the other way round. */
void image_resize_pad(uint8_t *out, int size, const uint8_t *in, int h, int w);

/* image_load_grey then image_resize_pad into a new u8 tensor [size, size].
 * Returns NULL when the file cannot be read or decoded, with the reason
 * (naming the file) in err; never dies for a bad file. */
tensor *image_prep_load(const char *path, int size, char *err, size_t errlen);

#endif
