"""End-to-end reference images: diffusers' StableDiffusionPipeline, loaded with
from_pretrained from the whole tiny model folders tests/fixtures/models/tiny-sd1
and tiny-sd2 (tokenizer, text encoder, UNet, VAE, scheduler, as the other
oracle scripts wrote them), for tests/80-generate.bats, which runs
`rep2lat | denoise | lat2png` on the same reports and compares the PNGs.

Inputs: three short reports of examples/reports.jsonl, copied verbatim to
tests/fixtures/e2e_reports.jsonl (so the test does not move when the demo
reports change). The prompt of each is the text rep2lat(1) takes from it
(text, else impression then findings joined by a space, "___" runs removed,
white space collapsed). Record i is seeded SEED + i, as rep2lat --seed SEED
seeds it, with its own torch.Generator("cpu"); the pipeline is called once per
prompt, so that the latent of each record is drawn from its own generator in
the shape [1, 4, 8, 8] (one pipe() call with several prompts and one generator
would draw one batch) and Euler ancestral continues that generator, as denoise
does. Schedulers: the folder's scheduler_config.json given to each class's
from_config (what denoise --scheduler does), STEPS steps, guidance 7.5, the
default empty negative prompt, 64x64.

Saved (tests/fixtures/e2e_ref.safetensors):
  <model>.<scheduler>.<id>.rgb8  u8 [64, 64, 3]    pipe(...).images[0] as numpy (the PNG pixels)
  <model>.<scheduler>.latents   f32 [3, 4, 8, 8]   the final latents of the three records
                                                   (callback at the last step), to locate a
                                                   difference when the pixels differ
metadata: prompts, seeds, steps, guidance, ids (JSON).
"""
import json
import os
import re

import numpy as np
import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline)

from transformers import CLIPTextModel

from oracle_util import FIXTURES, save

CLASSES = {"pndm": PNDMScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
           "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
IDS = ["demo06", "demo07", "demo11"]
SEED = 42
STEPS = 5
GUIDANCE = 7.5
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def prompt_of(rec):
    """The text rep2lat takes from a record (rep2lat(1), INPUT)."""
    if rec.get("text") is not None:
        t = rec["text"]
    else:
        t = " ".join(rec[k] for k in ("impression", "findings") if rec.get(k) is not None)
    t = re.sub(r"_{3,}", "", t)
    t = re.sub(r"[ \t\n\v\f\r]+", " ", t)
    return t.strip(" \t\n\v\f\r")


def main():
    torch.manual_seed(0)
    with open(os.path.join(ROOT, "examples", "reports.jsonl")) as f:
        lines = [ln for ln in f if ln.strip()]
    chosen = [ln for ln in lines if json.loads(ln).get("id") in IDS]
    assert len(chosen) == len(IDS)
    with open(os.path.join(FIXTURES, "e2e_reports.jsonl"), "w") as f:
        f.writelines(chosen)
    recs = [json.loads(ln) for ln in chosen]
    prompts = [prompt_of(r) for r in recs]
    seeds = [SEED + i for i in range(len(recs))]
    tensors = {}
    for model in ["tiny-sd1", "tiny-sd2"]:
        folder = os.path.join(FIXTURES, "models", model)
        # tiny-sd2 ships its text encoder as the fp16 variant only (as rep2lat
        # allows); it is widened to float32 on loading, as rep2lat does.
        extra = {}
        if not os.path.exists(os.path.join(folder, "text_encoder", "model.safetensors")):
            extra["text_encoder"] = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"),
                                                                  variant="fp16", torch_dtype=torch.float32)
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False,
                                                       torch_dtype=torch.float32, **extra)
        pipe.set_progress_bar_config(disable=True)
        with open(os.path.join(folder, "scheduler", "scheduler_config.json")) as f:
            cfg = json.load(f)
        for name, cls in CLASSES.items():
            pipe.scheduler = cls.from_config(cfg)
            imgs, lats = [], []
            for prompt, seed in zip(prompts, seeds):
                final = {}

                def grab(p, i, t, kw):
                    final["latents"] = kw["latents"].clone()
                    return kw

                with torch.no_grad():
                    out = pipe(prompt, num_inference_steps=STEPS, guidance_scale=GUIDANCE, height=64, width=64,
                               generator=torch.Generator("cpu").manual_seed(seed),
                               callback_on_step_end=grab, callback_on_step_end_tensor_inputs=["latents"])
                img = np.asarray(out.images[0])
                assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
                imgs.append(torch.from_numpy(img.copy()))
                lats.append(final["latents"][0])
            rgb = torch.stack(imgs)
            for rid, im in zip(IDS, imgs):
                tensors[f"{model}.{name}.{rid}.rgb8"] = im
            tensors[f"{model}.{name}.latents"] = torch.stack(lats)
            clamped = ((rgb == 0) | (rgb == 255)).float().mean().item()
            print(f"{model} {type(pipe.scheduler).__name__}: mean {rgb.float().mean():.1f}, "
                  f"{100 * clamped:.1f} % of samples at 0 or 255")
    save("e2e_ref.safetensors", tensors,
         meta={"ids": json.dumps(IDS), "prompts": json.dumps(prompts), "seeds": json.dumps(seeds),
               "steps": str(STEPS), "guidance": str(GUIDANCE)})


if __name__ == "__main__":
    main()
