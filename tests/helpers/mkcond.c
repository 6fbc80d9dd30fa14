/* mkcond — writes a small "conditioning" stream as rep2lat does, for the
 * denoise tests (tests/50-denoise.bats): header tensor uncond [T, D] and meta
 * model_path, records with cond [T, D], latents [C, H, W] (the raw noise of
 * torch.Generator().manual_seed(seed)) and meta seed/model. Options vary one
 * thing at a time so each error path can be reached:
 *   mkcond [-n RECORDS] [-D WIDTH] [-T TOKENS] [-C CHANNELS] [-H H] [-W W]
 *          [-s SEED] [-m MODEL_DIR] [-k KIND] [-u (no uncond)] [-x (vary H on record 2)]
 *          [-L NAME (latents tensor name)]  */
#include "common.h"
#include "rng.h"
#include "stream.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    prog_init(argv[0]);
    long n = 2, D = 32, T = 77, C = 4, H = 8, W = 8, seed = 7;
    const char *model = NULL, *kind = "conditioning", *lat_name = "latents";
    int no_uncond = 0, vary = 0, c;
    while ((c = getopt(argc, argv, "n:D:T:C:H:W:s:m:k:L:ux")) != -1) {
        switch (c) {
        case 'n': n = parse_long("-n", optarg, 0, 1000); break;
        case 'D': D = parse_long("-D", optarg, 1, 4096); break;
        case 'T': T = parse_long("-T", optarg, 1, 4096); break;
        case 'C': C = parse_long("-C", optarg, 1, 64); break;
        case 'H': H = parse_long("-H", optarg, 1, 512); break;
        case 'W': W = parse_long("-W", optarg, 1, 512); break;
        case 's': seed = parse_long("-s", optarg, 0, 1L << 40); break;
        case 'm': model = optarg; break;
        case 'k': kind = optarg; break;
        case 'L': lat_name = optarg; break;
        case 'u': no_uncond = 1; break;
        case 'x': vary = 1; break;
        default: die_usage("see the comment at the top of tests/helpers/mkcond.c");
        }
    }
    stream_writer *w = stream_writer_open(stdout, "stdout");
    stream_header h;
    stream_header_init(&h, kind, "mkcond " SYNTHCXR_VERSION);
    if (model) json_object_set_new(h.rec.meta, "model_path", json_string(model));
    json_object_set_new(h.rec.meta, "model", json_string("tiny"));
    if (!no_uncond) {
        tensor *u = tensor_new_f32(2, (int64_t[]){T, D});
        for (int64_t i = 0; i < T * D; i++) ((float *)u->data)[i] = (float)sin(0.37 * (double)i);
        record_add_tensor(&h.rec, "uncond", u);
    }
    stream_write_header(w, &h);
    stream_header_clear(&h);
    for (long r = 0; r < n; r++) {
        char id[32];
        snprintf(id, sizeof id, "r%ld", r + 1);
        record *rec = record_new(id);
        json_object_set_new(rec->meta, "seed", json_integer(seed + r));
        json_object_set_new(rec->meta, "model", json_string("tiny"));
        json_object_set_new(rec->meta, "text", json_string("No acute cardiopulmonary process."));
        tensor *cd = tensor_new_f32(2, (int64_t[]){T, D});
        for (int64_t i = 0; i < T * D; i++) ((float *)cd->data)[i] = (float)cos(0.11 * (double)i + (double)r);
        record_add_tensor(rec, "cond", cd);
        long h_r = vary && r == 1 ? H * 2 : H;
        tensor *lat = tensor_new_f32(3, (int64_t[]){C, h_r, W});
        torch_gen g;
        torch_gen_seed(&g, (uint64_t)(seed + r));
        torch_randn_f32(&g, lat->data, C * h_r * W);
        record_add_tensor(rec, lat_name, lat);
        stream_write_record(w, rec);
        record_free(rec);
    }
    stream_writer_close(w);
    return 0;
}
