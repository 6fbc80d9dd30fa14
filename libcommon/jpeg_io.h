/* jpeg_io.h — JPEG input (libjpeg-turbo), for source radiographs: decoded to
 * 8-bit grey or RGB. libjpeg's own error handler would exit the process; ours
 * turns every error, and every corrupt-data warning (a truncated file), into a
 * message naming the file. */
#ifndef SYNTHCXR_JPEG_IO_H
#define SYNTHCXR_JPEG_IO_H

#include "tensor.h"

/* Reads path into a new u8 tensor [h, w, c]: c = 1 for a greyscale JPEG, 3
 * (RGB) for a colour one (YCbCr or RGB). libjpeg's defaults: the accurate
 * integer IDCT and "fancy" chroma upsampling, as Pillow decodes. CMYK files
 * are refused; EXIF orientation is not applied (nor is it by Pillow's open).
 * Dies "<path>: not a JPEG file", "<path>: truncated JPEG file",
 * "<path>: corrupt JPEG file: <libjpeg's reason>" or "cannot open <path>: ...". */
tensor *jpegio_read(const char *path);

#endif
