"""bench/gen_bench.py — the Python half of bench/generation.sh (benchmarks are
the one place besides tests/oracle/ where Python may run; it runs in the
oracle venv, outside the repo, and nothing in the build needs it).

  gen_bench.py model DIR [sd21|sd15]   writes DIR once: a diffusers
      StableDiffusionPipeline folder with random fp32 weights at the real
      shapes (SD 2.1-base: UNet (320,640,1280,1280), head dims [5,10,20,20],
      linear projections, cross 1024, OpenCLIP-H text tower as diffusers
      stores it; SD 1.5: cross 768, 8 heads, CLIP-L), the published PNDM
      scheduler config and the committed CLIP tokenizer of
      tests/fixtures/tokenizers/sd2 (SD 1.5: pad <|endoftext|>). Seeded, so a
      rebuilt folder holds the same weights.
  gen_bench.py diffusers DIR PROMPT STEPS GUIDANCE SEED SIZE OUT.png
      one image through diffusers' StableDiffusionPipeline on the CPU in fp32
      with torch threads = all cores; one JSON object on stdout with the
      load, text encoder, per-UNet-call, VAE decode and total seconds and
      the peak RSS (getrusage).
  gen_bench.py compare A.png B.png     share of pixels within 1/255, max diff.
  gen_bench.py report WORK OUT.json    generation.sh's table (stderr) and JSON
      lines, from what it left in WORK: the programs' stderr (*.err), GNU
      time's "wall_s peak_rss_kib" (*.time), common/diffusers/compare.json.
"""
import json
import os
import re
import resource
import shutil
import statistics
import sys
import time


# The real UNet shapes (bench/gpu_diffusers.py builds the same UNets on the GPU).
TEXT_SHAPES = {
    "sd21": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                 hidden_act="gelu", projection_dim=512),
    "sd15": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 hidden_act="quick_gelu", projection_dim=768),
}


def unet_kwargs(kind):
    """UNet2DConditionModel arguments of SD 2.1-base ("sd21") or SD 1.5 ("sd15")."""
    cross, heads, linear = (1024, [5, 10, 20, 20], True) if kind == "sd21" else (768, 8, False)
    return dict(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=cross, attention_head_dim=heads, use_linear_projection=linear,
        norm_num_groups=32, flip_sin_to_cos=True, freq_shift=0)


def make_model(out, kind):
    import torch
    from diffusers import (AutoencoderKL, PNDMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if os.path.exists(os.path.join(out, "model_index.json")):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    tok_dir = os.path.join(here, "..", "tests", "fixtures", "tokenizers", "sd2")
    torch.manual_seed(0)
    if kind not in ("sd21", "sd15"):
        sys.exit(f"gen_bench: unknown model kind {kind!r} (sd21 or sd15)")
    text = TEXT_SHAPES[kind]
    unet = UNet2DConditionModel(**unet_kwargs(kind))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=32, sample_size=512, scaling_factor=0.18215)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, layer_norm_eps=1e-5,
                                      bos_token_id=0, eos_token_id=2, pad_token_id=1, **text))
    tok = CLIPTokenizer.from_pretrained(tok_dir)
    if kind == "sd15":
        tok.pad_token = "<|endoftext|>"
    sched = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          num_train_timesteps=1000, set_alpha_to_one=False, skip_prk_steps=True,
                          steps_offset=1, prediction_type="epsilon")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    # transformers 5 saves only tokenizer.json; the folder gets the committed
    # vocab.json + merges.txt form that published SD folders have.
    shutil.rmtree(os.path.join(tmp, "tokenizer"))
    shutil.copytree(tok_dir, os.path.join(tmp, "tokenizer"), symlinks=False)
    if kind == "sd15":
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            path = os.path.join(tmp, "tokenizer", name)
            with open(path) as f:
                cfg = json.load(f)
            cfg["pad_token"] = "<|endoftext|>"
            with open(path, "w") as f:
                json.dump(cfg, f, indent=2)
    os.replace(tmp, out)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_diffusers(model, prompt, steps, guidance, seed, size, out_png):
    import torch
    torch.set_num_threads(os.cpu_count())
    from diffusers import StableDiffusionPipeline

    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=torch.float32, safety_checker=None)
    pipe.set_progress_bar_config(disable=True)
    t_load = time.perf_counter() - t0

    times = {"text": [], "unet": [], "vae": []}

    def timed(name, fn):
        def wrapper(*a, **k):
            s = time.perf_counter()
            r = fn(*a, **k)
            times[name].append(time.perf_counter() - s)
            return r
        return wrapper

    pipe.text_encoder.forward = timed("text", pipe.text_encoder.forward)
    pipe.unet.forward = timed("unet", pipe.unet.forward)
    pipe.vae.decode = timed("vae", pipe.vae.decode)
    gen = torch.Generator("cpu").manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        img = pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, height=size, width=size,
                   generator=gen).images[0]
    t_run = time.perf_counter() - t0
    img.save(out_png)
    print(json.dumps({
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "load_s": t_load, "text_encoder_call_s": times["text"],
        "unet_calls": len(times["unet"]), "unet_s": sum(times["unet"]), "unet_call_s": times["unet"],
        "vae_s": sum(times["vae"]), "run_s": t_run, "peak_rss_mib": peak_rss_mib()}))


def compare(a, b):
    import numpy as np
    from PIL import Image
    x = np.asarray(Image.open(a).convert("RGB"), dtype=np.int32)
    y = np.asarray(Image.open(b).convert("RGB"), dtype=np.int32)
    if x.shape != y.shape:
        print(json.dumps({"same_shape": False}))
        return
    d = np.abs(x - y)
    print(json.dumps({"same_shape": True, "within_1": float((d <= 1).mean()), "max_diff": int(d.max())}))


ROWS = [("text_encoder_s", "text encoder, s per prompt (warm pass)"),
        ("step_s", "UNet, s per CFG step (median; 2 x batch 1)"),
        ("vae_s", "VAE decode, s"),
        ("total_s", "total wall, s (start to PNG, incl. load)"),
        ("cpu_s", "total CPU (user + sys), s"),
        ("peak_rss_mib", "peak RSS, MiB")]

# The closing or 10 % progress line: "prog: LABEL: 3/5 step (60%), 18.9 s/step,
# ETA 0:38" or "prog: LABEL: 5/5 step in 81.4 s (16.3 s/step)"; rates under
# one a second read "2.46 report/s".
PROGRESS = re.compile(r"^[a-z0-9]+: (?P<label>[^:]+): (?P<done>\d+)(?:/\d+)? \S+ .*?"
                      r"(?P<rate>[0-9.]+) (?P<unit>s/\S+|\S+/s)\)?(?:, ETA .*)?$")


def progress_points(path, label):
    """[(done, seconds so far)] from a program's progress lines."""
    pts = []
    with open(path) as f:
        for line in f:
            m = PROGRESS.match(line.rstrip("\n"))
            if not m or m["label"] != label:
                continue
            rate, done = float(m["rate"]), int(m["done"])
            pts.append((done, done * rate if m["unit"].startswith("s/") else done / rate))
    if not pts:
        sys.exit(f"gen_bench: no progress line '{label}' in {path}")
    return pts


def per_unit(pts):
    """Seconds of each unit between progress points (one per unit when every unit printed)."""
    out, prev_n, prev_t = [], 0, 0.0
    for n, t in pts:
        if n > prev_n:
            out += [(t - prev_t) / (n - prev_n)] * (n - prev_n)
            prev_n, prev_t = n, t
    return out


def report(work, out):
    def path(name):
        return os.path.join(work, name)

    def load(name):
        with open(path(name)) as f:
            return json.load(f)

    def gnu_time(name):
        """(wall s, peak RSS MiB, CPU s = user + sys)"""
        with open(path(name)) as f:
            wall, rss, user, sys_ = f.read().split()
        return float(wall), float(rss) / 1024.0, float(user) + float(sys_)

    d, common = load("diffusers.json"), load("common.json")
    common["image_match"] = load("compare.json")
    stages = {s: gnu_time(s + ".time") for s in ("rep2lat", "denoise", "lat2png")}
    calls = per_unit(progress_points(path("denoise.err"), "record 1"))
    ours = dict(text_encoder_s=progress_points(path("rep2lat.err"), "text encoder")[-1][1],
                step_s=statistics.median(calls), vae_s=progress_points(path("lat2png.err"), "decoded")[-1][1],
                total_s=sum(t[0] for t in stages.values()), peak_rss_mib=max(t[1] for t in stages.values()),
                cpu_s=sum(t[2] for t in stages.values()),
                cfg_steps=len(calls), unet_call_s=calls, step_mean_s=statistics.mean(calls),
                stage_wall_s={s: t[0] for s, t in stages.items()},
                stage_rss_mib={s: t[1] for s, t in stages.items()},
                stage_cpu_s={s: t[2] for s, t in stages.items()})
    ours["reports_per_s"] = 1.0 / ours["text_encoder_s"]
    d_wall, d_rss, d_cpu = gnu_time("diffusers.time")
    # The warm pass on both sides: diffusers' first text encoder call also pages
    # in its lazily mapped weights; rep2lat times the prompt after the negative.
    theirs = dict(text_encoder_s=min(d["text_encoder_call_s"]), text_encoder_call_s=d["text_encoder_call_s"],
                  step_s=statistics.median(d["unet_call_s"]), vae_s=d["vae_s"],
                  total_s=d_wall, peak_rss_mib=d_rss, cpu_s=d_cpu, cfg_steps=d["unet_calls"],
                  unet_call_s=d["unet_call_s"], step_mean_s=statistics.mean(d["unet_call_s"]),
                  load_s=d["load_s"], run_s=d["run_s"], torch=d["torch"])
    with open(out + ".tmp", "w") as f:
        for k, what in ROWS:
            r = ours[k] / theirs[k]
            f.write(json.dumps(dict(bench="generation", figure=k, synthcxr=ours[k], diffusers=theirs[k],
                                    ratio=r, **common)) + "\n")
            print(f"bench: {what:44s} synthcxr {ours[k]:8.2f}  diffusers {theirs[k]:8.2f}  "
                  f"ratio {r:5.2f}", file=sys.stderr)
        f.write(json.dumps(dict(bench="generation", figure="detail", synthcxr=ours, diffusers=theirs,
                                **common)) + "\n")
    os.replace(out + ".tmp", out)
    print("bench: UNet calls, s: synthcxr " + " ".join(f"{t:.1f}" for t in calls) + "; diffusers "
          + " ".join(f"{t:.1f}" for t in d["unet_call_s"]), file=sys.stderr)
    print("bench: synthcxr stages, wall s incl. load / CPU s / peak RSS MiB: " + ", ".join(
        f"{s} {w:.1f}/{c:.1f}/{r:.0f}" for s, (w, r, c) in stages.items())
        + f"; CPU s in all: synthcxr {ours['cpu_s']:.1f}, diffusers {d_cpu:.1f}", file=sys.stderr)
    m = common["image_match"]
    print(f"bench: diffusers load {theirs['load_s']:.1f} s, pipeline call {theirs['run_s']:.1f} s; "
          f"images within 1/255 on {100 * m.get('within_1', 0):.2f} % of pixels (max diff "
          f"{m.get('max_diff')}); load average {common['load_before']} / {common['load_between']} / "
          f"{common['load_after']} (before / between / after)", file=sys.stderr)


def main():
    a = sys.argv[1:]
    if a and a[0] == "model" and len(a) in (2, 3):
        make_model(a[1], a[2] if len(a) == 3 else "sd21")
    elif a and a[0] == "diffusers" and len(a) == 8:
        run_diffusers(a[1], a[2], int(a[3]), float(a[4]), int(a[5]), int(a[6]), a[7])
    elif a and a[0] == "report" and len(a) == 3:
        report(a[1], a[2])
    elif a and a[0] == "compare" and len(a) == 3:
        compare(a[1], a[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
