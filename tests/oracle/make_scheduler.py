"""Reference runs of diffusers' schedulers for tests/unit/test_scheduler.c.

Each case builds a scheduler from a scheduler_config.json text exactly as a
pipeline does (from_config of the file's keys; with an override class,
OtherScheduler.from_config(scheduler.config) as the diffusers docs show), sets
10 (or 20) steps and runs the text-to-image loop of StableDiffusionPipeline
with a deterministic fake model in place of the UNet:
    model_out = 0.1 * x_in + sin(t / 100) * C     (x_in = scale_model_input(x, t))
C is a fixed tensor saved as "C". The generator is seeded per case, draws the
initial latents [1,4,4,4] as prepare_latents does and is then handed to
scheduler.step, so Euler ancestral continues the same stream.
Saved per case: timesteps, init_noise_sigma, the raw initial noise, the
latents after each step ([calls + 1, 4, 4, 4]; row 0 = the noise times
init_noise_sigma), for ancestral cases the noise each step drew, and
alphas_cumprod_table, the index k of the case's alphas_cumprod, which is saved
once per distinct table as alphas_cumprod.<k>. (The schedulers work element by
element, so 64 latent values test what 4096 would; 64 >= 16 keeps torch's
vectorised normal draw, as at SD's sizes.)
The configs and override names go into the safetensors metadata as JSON.
"""
import json
import math

import torch
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, PNDMScheduler)
from diffusers.utils.torch_utils import randn_tensor

from oracle_util import save

CLASSES = {"pndm": PNDMScheduler, "ddim": DDIMScheduler, "euler": EulerDiscreteScheduler,
           "euler_a": EulerAncestralDiscreteScheduler, "dpmpp_2m": DPMSolverMultistepScheduler}
BY_CLASS_NAME = {c.__name__: c for c in CLASSES.values()}

# The published configs (stabilityai / CompVis / RoentGen model folders).
SD1 = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012,
       "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000,
       "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
       "clip_sample": False}
SD21_768 = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0", "beta_end": 0.012,
            "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
            "num_train_timesteps": 1000, "prediction_type": "v_prediction", "set_alpha_to_one": False,
            "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}


def with_(cfg, **kw):
    d = dict(cfg)
    d.update(kw)
    return d


# name, config file contents, override (None: the file's class), steps
CASES = [
    ("pndm_sd1", SD1, None, 10),
    ("pndm_sd1_v", with_(SD1, prediction_type="v_prediction"), None, 10),
    ("pndm_trailing", with_(SD1, timestep_spacing="trailing", steps_offset=0), None, 10),
    ("pndm_linspace_linear", with_(SD1, timestep_spacing="linspace", beta_schedule="linear",
                                    beta_start=0.0001, beta_end=0.02, set_alpha_to_one=True), None, 7),
    ("ddim_sd21", SD21_768, None, 10),
    ("ddim_sd1_eps", SD1, "ddim", 10),
    ("ddim_trailing_one", with_(SD21_768, timestep_spacing="trailing", set_alpha_to_one=True,
                                prediction_type="epsilon"), None, 10),
    # clip_sample absent: DDIM's default (True) clamps x0 to [-1, 1]
    ("ddim_clip_default", {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
                           "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}, None, 10),
    ("ddim_linspace", with_(SD21_768, timestep_spacing="linspace"), None, 9),
    ("euler_sd1", SD1, "euler", 10),
    ("euler_sd21_v", SD21_768, "euler", 10),
    ("euler_linspace", {"_class_name": "EulerDiscreteScheduler", "beta_schedule": "scaled_linear",
                        "beta_start": 0.00085, "beta_end": 0.012}, None, 10),
    ("euler_trailing_sigmamin", with_(SD21_768, _class_name="EulerDiscreteScheduler",
                                      timestep_spacing="trailing", final_sigmas_type="sigma_min"), None, 10),
    ("euler_a_sd1", SD1, "euler_a", 10),
    ("euler_a_sd21_v", SD21_768, "euler_a", 10),
    ("euler_a_linspace", {"_class_name": "EulerAncestralDiscreteScheduler", "beta_schedule": "scaled_linear",
                          "beta_start": 0.00085, "beta_end": 0.012}, None, 10),
    ("euler_a_trailing", with_(SD1, timestep_spacing="trailing"), "euler_a", 10),
    ("dpmpp_sd1", SD1, "dpmpp_2m", 10),
    ("dpmpp_sd21_v", SD21_768, "dpmpp_2m", 10),
    ("dpmpp_linspace_20", {"_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear",
                           "beta_start": 0.00085, "beta_end": 0.012}, None, 20),
    ("dpmpp_trailing_sigmamin", with_(SD1, _class_name="DPMSolverMultistepScheduler",
                                      timestep_spacing="trailing", final_sigmas_type="sigma_min",
                                      lower_order_final=False), None, 10),
    ("euler_leading", with_(SD1, timestep_spacing="leading"), "euler", 10),
    ("euler_a_leading_v", with_(SD21_768, timestep_spacing="leading"), "euler_a", 10),
    ("dpmpp_leading", with_(SD1, timestep_spacing="leading"), "dpmpp_2m", 10),
    # edges: one or two steps, odd counts with trailing spacing (numpy's float
    # arange), and the pipeline's default of 50 steps
    ("pndm_1", SD1, None, 1),
    ("pndm_2", SD1, None, 2),
    ("ddim_1", SD21_768, None, 1),
    ("euler_1", SD1, "euler", 1),
    ("euler_a_2", SD1, "euler_a", 2),
    ("dpmpp_1", SD1, "dpmpp_2m", 1),
    ("dpmpp_2", SD21_768, "dpmpp_2m", 2),
    ("dpmpp_trailing_3", with_(SD1, timestep_spacing="trailing"), "dpmpp_2m", 3),
    ("ddim_trailing_7", with_(SD1, timestep_spacing="trailing"), "ddim", 7),
    ("euler_trailing_3", with_(SD1, timestep_spacing="trailing"), "euler", 3),
    ("euler_linspace_7", SD1, "euler", 7),
    ("pndm_50", SD1, None, 50),
    ("dpmpp_50", SD1, "dpmpp_2m", 50),
    ("euler_karras", with_(SD1, use_karras_sigmas=True), "euler", 10),
    ("euler_karras_v_leading", with_(SD21_768, use_karras_sigmas=True, timestep_spacing="leading"), "euler", 10),
    ("euler_karras_range", with_(SD1, _class_name="EulerDiscreteScheduler", use_karras_sigmas=True,
                                 sigma_min=0.1, sigma_max=10.0), None, 10),
    ("dpmpp_karras", with_(SD1, use_karras_sigmas=True), "dpmpp_2m", 10),
    ("dpmpp_karras_v_25", with_(SD21_768, use_karras_sigmas=True), "dpmpp_2m", 25),
    # PNDM with its Runge-Kutta warm-up (skip_prk_steps false: the class default)
    ("pndm_prk", with_(SD1, skip_prk_steps=False), None, 10),
    ("pndm_prk_default", {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear",
                          "beta_start": 0.00085, "beta_end": 0.012}, None, 10),
    ("pndm_prk_v_trailing", with_(SD21_768, _class_name="PNDMScheduler", skip_prk_steps=False,
                                  timestep_spacing="trailing"), None, 7),
    ("pndm_prk_4", with_(SD1, skip_prk_steps=False), None, 4),
    ("dpmpp_order1", with_(SD21_768, _class_name="DPMSolverMultistepScheduler", solver_order=1), None, 10),
]


def build(cfg, override):
    sched = BY_CLASS_NAME[cfg["_class_name"]].from_config(cfg)
    if override:
        sched = CLASSES[override].from_config(sched.config)
    return sched


def fake_model(x, t, C):
    return 0.1 * x + math.sin(float(t) / 100.0) * C


def run_case(cfg, override, steps, seed, C):
    sched = build(cfg, override)
    sched.set_timesteps(steps)
    g = torch.Generator("cpu").manual_seed(seed)
    noise0 = randn_tensor((1, 4, 4, 4), generator=g, dtype=torch.float32)
    x = noise0 * sched.init_noise_sigma
    out = [x[0].clone()]
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        mo = fake_model(x_in, t, C)
        kw = {"generator": g} if "generator" in __import__("inspect").signature(sched.step).parameters else {}
        x = sched.step(mo, t, x, return_dict=False, **kw)[0]
        out.append(x[0].clone())
    # the noise an ancestral step drew: replay the generator
    g2 = torch.Generator("cpu").manual_seed(seed)
    torch.randn((1, 4, 4, 4), generator=g2)
    step_noise = torch.stack([torch.randn((1, 4, 4, 4), generator=g2)[0] for _ in sched.timesteps])
    return {
        "timesteps": sched.timesteps.to(torch.float32),
        "init_noise_sigma": torch.tensor([float(sched.init_noise_sigma)], dtype=torch.float32),
        "alphas_cumprod": sched.alphas_cumprod.to(torch.float32),
        "noise0": noise0[0],
        "latents": torch.stack(out),
        "step_noise": step_noise,
    }, type(sched).__name__


def main():
    torch.manual_seed(0)
    C = torch.randn(4, 4, 4)
    tensors = {"C": C}
    tables = []
    meta_cases = []
    for i, (name, cfg, override, steps) in enumerate(CASES):
        seed = 1000 + i
        res, cls = run_case(cfg, override, steps, seed, C)
        for k, v in res.items():
            if k == "step_noise" and not name.startswith("euler_a"):
                continue
            if k == "alphas_cumprod":
                idx = next((j for j, a in enumerate(tables) if a.equal(v)), None)
                if idx is None:
                    idx = len(tables)
                    tables.append(v)
                    tensors[f"alphas_cumprod.{idx}"] = v
                tensors[f"{name}.alphas_cumprod_table"] = torch.tensor([idx], dtype=torch.int32)
                continue
            tensors[f"{name}.{k}"] = v
        meta_cases.append({"name": name, "config": json.dumps(cfg), "override": override or "",
                           "steps": steps, "seed": seed, "class": cls})
    save("scheduler_ref.safetensors", tensors, meta={"cases": json.dumps(meta_cases)})


if __name__ == "__main__":
    main()
