"""Reference final latents of diffusers' StableDiffusionPipeline for the denoise
loop (tests/unit/test_scheduler.c, test_pipeline_*).

The tiny UNets of tests/fixtures/models/tiny-sd{1,2}/unet (written by
make_unet.py) run inside the real pipeline class with output_type="latent":
prompt_embeds / negative_prompt_embeds are given directly (random states of
the UNet's cross_attention_dim, 77 tokens), two prompts in one call with a
list of two seeded generators (so each record has its own generator, drawn
first by prepare_latents and then, for Euler ancestral, by scheduler.step),
10 steps, guidance 7.5 (one case 1.0: no CFG), latents [4, 8, 16]. The
scheduler comes from the folder's scheduler_config.json, with an override
class through from_config as the diffusers docs show, and prediction_type
set to epsilon or v_prediction (the same weights serve both: the loop is
what is tested). Saved: the states, the seeds, the raw initial noise
(= what rep2lat writes) and each case's final latents [2, 4, 8, 16]; the
case list (model, scheduler, prediction, guidance) is JSON in the metadata.
"""
import json
import os

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel)
from diffusers.utils.torch_utils import randn_tensor

from oracle_util import FIXTURES, save

CLASSES = {"pndm": PNDMScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
           "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
SEEDS = [7, 8]
H, W = 8, 16
STEPS = 10

CASES = [(m, s, p, 7.5) for m in ["tiny-sd1"] for s in CLASSES for p in ["epsilon", "v_prediction"]]
CASES += [("tiny-sd2", "ddim", "v_prediction", 7.5), ("tiny-sd2", "euler_a", "epsilon", 7.5),
          ("tiny-sd2", "dpmpp_2m", "v_prediction", 7.5), ("tiny-sd1", "euler_a", "epsilon", 1.0)]


def scheduler_for(model_dir, name, prediction):
    with open(os.path.join(model_dir, "scheduler", "scheduler_config.json")) as f:
        cfg = json.load(f)
    cfg["prediction_type"] = prediction
    base = PNDMScheduler.from_config(cfg)
    return base if name == "pndm" else CLASSES[name].from_config(base.config), cfg


def main():
    torch.manual_seed(0)
    tensors = {}
    cases = []
    states = {}
    for model in ["tiny-sd1", "tiny-sd2"]:
        unet = UNet2DConditionModel.from_pretrained(os.path.join(FIXTURES, "models", model, "unet"),
                                                    torch_dtype=torch.float32).eval()
        D = unet.config.cross_attention_dim
        states[model] = (unet, torch.randn(77, D), torch.randn(len(SEEDS), 77, D))
        tensors[f"{model}.uncond"] = states[model][1]
        tensors[f"{model}.cond"] = states[model][2]
        noise = [randn_tensor((1, 4, H, W), generator=torch.Generator("cpu").manual_seed(s))[0] for s in SEEDS]
        tensors[f"{model}.noise"] = torch.stack(noise)
    for i, (model, name, prediction, guidance) in enumerate(CASES):
        unet, uncond, cond = states[model]
        sched, cfg = scheduler_for(os.path.join(FIXTURES, "models", model), name, prediction)
        pipe = StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=unet, scheduler=sched,
                                       safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        gens = [torch.Generator("cpu").manual_seed(s) for s in SEEDS]
        with torch.no_grad():
            out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond.expand(len(SEEDS), -1, -1),
                       num_inference_steps=STEPS, guidance_scale=guidance, generator=gens,
                       height=H * 8, width=W * 8, output_type="latent", return_dict=True)
        tensors[f"case{i}.latents"] = out.images
        cases.append({"model": model, "scheduler": name, "prediction_type": prediction, "guidance": guidance,
                      "config": json.dumps(cfg), "class": type(sched).__name__})
        print(f"case{i}: {model} {type(sched).__name__} {prediction} g={guidance}: "
              f"max |latents| {out.images.abs().max():.3f}")
    # The stream tests/helpers/mkcond writes (3 records, seeds 7..9, [4, 8, 8]),
    # for tests/50-denoise.bats: the program end to end against the pipeline.
    import numpy as np
    unet, D = states["tiny-sd1"][0], 32
    idx = np.arange(77 * D, dtype=np.float64)
    uncond = torch.from_numpy(np.sin(0.37 * idx).astype(np.float32).reshape(77, D))
    cond = torch.stack([torch.from_numpy(np.cos(0.11 * idx + r).astype(np.float32).reshape(77, D))
                        for r in range(3)])
    for name in ["pndm", "euler_a"]:
        sched, _ = scheduler_for(os.path.join(FIXTURES, "models", "tiny-sd1"), name, "epsilon")
        pipe = StableDiffusionPipeline(vae=None, text_encoder=None, tokenizer=None, unet=unet, scheduler=sched,
                                       safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        gens = [torch.Generator("cpu").manual_seed(7 + r) for r in range(3)]
        with torch.no_grad():
            out = pipe(prompt_embeds=cond, negative_prompt_embeds=uncond.expand(3, -1, -1), num_inference_steps=10,
                       guidance_scale=7.5, generator=gens, height=64, width=64, output_type="latent")
        tensors[f"mkcond.{name}"] = out.images
    save("denoise_ref.safetensors", tensors,
         meta={"cases": json.dumps(cases), "seeds": json.dumps(SEEDS), "steps": str(STEPS)})


if __name__ == "__main__":
    main()
