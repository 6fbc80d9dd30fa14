/* mklatents — writes a "latents" cxrstream (as denoise writes it) to stdout
 * from latents in a safetensors fixture, for tests/60-lat2png.bats.
 *   mklatents [OPTIONS] FIXTURE TENSOR
 * TENSOR is [B, C, h, w]; record i carries latents TENSOR[i % B] as f32
 * [C, h, w] and meta {text, seed, model, scheduler, steps, guidance}.
 *   --ids A,B,...     record ids (default: one record, "r1")
 *   --kind K          the stream kind (default latents)
 *   --channels N      keep the first N channels (N < C) or pad with zeros
 *   --model-path DIR  header meta.model_path (as rep2lat records the folder)
 *   --name N          the tensor's name (default latents)
 *   --repeat R        latents tiled R x R times (a larger image)
 *   --no-meta         records without meta */
#include "common.h"
#include "safetensors.h"
#include "stream.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    prog_init(argv[0]);
    const char *ids = "r1", *kind = "latents", *model_path = NULL, *tname = "latents";
    int channels = -1, no_meta = 0, rep = 1, c;
    static const struct option lo[] = {{"ids", 1, 0, 'i'},        {"kind", 1, 0, 'k'},
                                       {"channels", 1, 0, 'c'},   {"model-path", 1, 0, 'm'},
                                       {"no-meta", 0, 0, 'n'},    {"name", 1, 0, 't'},
                                       {"repeat", 1, 0, 'r'},     {0, 0, 0, 0}};
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'i': ids = optarg; break;
        case 'k': kind = optarg; break;
        case 'c': channels = (int)parse_long("--channels", optarg, 1, 64); break;
        case 'm': model_path = optarg; break;
        case 'n': no_meta = 1; break;
        case 't': tname = optarg; break;
        case 'r': rep = (int)parse_long("--repeat", optarg, 1, 64); break;
        default: die_usage("usage: mklatents [--ids A,B] [--kind K] [--channels N] [--model-path DIR] [--no-meta] FIXTURE TENSOR");
        }
    }
    if (argc - optind != 2) die_usage("usage: mklatents [OPTIONS] FIXTURE TENSOR");
    st_file *f = st_open(argv[optind]);
    tensor *t = st_load_f32(f, argv[optind + 1], -1, NULL);
    if (t->ndim != 4) die("%s: need [B, C, h, w]", argv[optind + 1]);
    int64_t B = t->shape[0], C = t->shape[1], h = t->shape[2], w = t->shape[3];
    int oc = channels > 0 ? channels : (int)C;

    stream_writer *wr = stream_writer_open(stdout, "stdout");
    stream_header hd;
    stream_header_init(&hd, kind, "mklatents " SYNTHCXR_VERSION);
    json_object_set_new(hd.rec.meta, "model", json_string("tiny-sd"));
    if (model_path) json_object_set_new(hd.rec.meta, "model_path", json_string(model_path));
    json_object_set_new(hd.rec.meta, "scheduler", json_string("pndm"));
    stream_write_header(wr, &hd);
    stream_header_clear(&hd);

    char *list = xstrdup(ids), *save = NULL;
    long i = 0;
    for (char *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save), i++) {
        record *r = record_new(id);
        if (!no_meta) {
            char *text = xasprintf("Report %s: small left pleural effusion, no pneumothorax.", id);
            json_object_set_new(r->meta, "text", json_string(text));
            free(text);
            json_object_set_new(r->meta, "seed", json_integer(1000 + i));
            json_object_set_new(r->meta, "model", json_string("tiny-sd2"));
            json_object_set_new(r->meta, "scheduler", json_string("ddim"));
            json_object_set_new(r->meta, "steps", json_integer(4));
            json_object_set_new(r->meta, "guidance", json_real(7.5));
        }
        int64_t H = h * rep, W = w * rep;
        tensor *l = tensor_new_f32(3, (int64_t[]){oc, H, W});
        const float *src = (const float *)t->data + (i % B) * C * h * w;
        float *dst = l->data;
        for (int k = 0; k < oc && k < C; k++)
            for (int64_t y = 0; y < H; y++)
                for (int64_t x = 0; x < W; x++) dst[(k * H + y) * W + x] = src[(k * h + y % h) * w + x % w];
        record_add_tensor(r, tname, l);
        stream_write_record(wr, r);
        record_free(r);
    }
    free(list);
    stream_writer_close(wr);
    tensor_free(t);
    st_close(f);
    return 0;
}
