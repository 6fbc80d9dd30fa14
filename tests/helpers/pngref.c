/* pngref — reads a PNG back with libcommon's reader, for tests/60-lat2png.bats.
 *   pngref text PNG                  every text chunk as "key=value" lines
 *   pngref info PNG                  "WxH c=C bits=B"
 *   pngref cmp PNG FIXTURE TENSOR [TOL]
 *                                    compares the samples with a u8 or i32
 *                                    fixture tensor [h, w] or [h, w, c]; prints
 *                                    "samples N differ K maxdiff D" and exits 1
 *                                    when D > TOL (default 0: all equal)
 *   pngref diff PNG OTHER_PNG [TOL]  the same between two PNGs of one size,
 *                                    channel count and bit depth, and the mean
 *                                    |difference| ("... meandiff M") (tests/57-pipeline-gpu.bats) */
#include "common.h"
#include "png_io.h"
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    prog_init(argv[0]);
    if (argc < 3) die_usage("usage: pngref text|info|cmp PNG [FIXTURE TENSOR]");
    pngio_image *im = pngio_read(argv[2]);
    const tensor *p = im->pixels;
    int rc = 0;
    if (!strcmp(argv[1], "text")) {
        for (int i = 0; i < im->n_text; i++) printf("%s=%s\n", im->text[i].key, im->text[i].value);
    } else if (!strcmp(argv[1], "info")) {
        printf("%lldx%lld c=%lld bits=%d\n", (long long)p->shape[1], (long long)p->shape[0], (long long)p->shape[2],
               im->bit_depth);
    } else if (!strcmp(argv[1], "cmp") && (argc == 5 || argc == 6)) {
        double tol = argc == 6 ? parse_double("TOL", argv[5], 0, 65535) : 0;
        st_file *f = st_open(argv[3]);
        tensor *want = st_load_f32(f, argv[4], -1, NULL);
        int64_t n = tensor_numel(p);
        if (tensor_numel(want) != n) die("%s has %lld samples, %s has %lld", argv[2], (long long)n, argv[4],
                                         (long long)tensor_numel(want));
        long differ = 0;
        double maxd = 0;
        for (int64_t i = 0; i < n; i++) {
            double g = p->dtype == DTYPE_U8 ? ((uint8_t *)p->data)[i] : ((int32_t *)p->data)[i];
            double d = fabs(g - ((float *)want->data)[i]);
            if (d > 0) differ++;
            if (d > maxd) maxd = d;
        }
        printf("samples %lld differ %ld maxdiff %g\n", (long long)n, differ, maxd);
        rc = maxd > tol;
        tensor_free(want);
        st_close(f);
    } else if (!strcmp(argv[1], "diff") && (argc == 4 || argc == 5)) {
        double tol = argc == 5 ? parse_double("TOL", argv[4], 0, 65535) : 0;
        pngio_image *other = pngio_read(argv[3]);
        const tensor *q = other->pixels;
        if (p->ndim != q->ndim || !tensor_same_shape(p, q->ndim, q->shape) || im->bit_depth != other->bit_depth)
            die("%s and %s differ in size, channels or bit depth", argv[2], argv[3]);
        int64_t n = tensor_numel(p);
        long differ = 0;
        double maxd = 0, sum = 0;
        for (int64_t i = 0; i < n; i++) {
            double a = p->dtype == DTYPE_U8 ? ((uint8_t *)p->data)[i] : ((int32_t *)p->data)[i];
            double b = q->dtype == DTYPE_U8 ? ((uint8_t *)q->data)[i] : ((int32_t *)q->data)[i];
            double d = fabs(a - b);
            if (d > 0) differ++;
            if (d > maxd) maxd = d;
            sum += d;
        }
        printf("samples %lld differ %ld maxdiff %g meandiff %.4f\n", (long long)n, differ, maxd, n ? sum / n : 0.0);
        rc = maxd > tol;
        pngio_image_free(other);
    } else {
        die_usage("usage: pngref text|info|cmp|diff PNG [FIXTURE TENSOR | OTHER_PNG] [TOL]");
    }
    pngio_image_free(im);
    return rc;
}
