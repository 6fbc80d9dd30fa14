"""Two tiny random CLIP text encoders in diffusers' model-folder layout, and
what transformers computes with them, for libcommon/clip_text.c and rep2lat.

tests/fixtures/models/tiny-sd1/  SD 1.x-like: quick_gelu, pads with EOS,
                                 text_encoder/model.safetensors (float16,
                                 weights named text_model.* as published)
tests/fixtures/models/tiny-sd2/  SD 2.x-like: gelu, pads with "!" (id 0),
                                 text_encoder/model.fp16.safetensors (the
                                 .fp16 variant only, float16; weights named
                                 without text_model., as transformers 5 saves)
Each holds model_index.json (StableDiffusionPipeline, as published; the unet,
vae and scheduler folders are written by their own oracle scripts),
text_encoder/config.json + weights, and tokenizer/ with the real CLIP
vocabulary (vocab.json, merges.txt: relative links to ../../../clip-vocab) and
the tokenizer_config.json / special_tokens_map.json the published SD 1.4 and
SD 2.1 folders carry.

The vocabulary is the real one (49408 tokens), so the embedding table is the
bulk of each file; the weights are stored as float16 and the references are
computed in float32 from those same float16-rounded weights.

tests/fixtures/clip_text_ref.safetensors holds, for each model (sd1., sd2.):
  ids           [N, 77] i32   CLIPTokenizer ids of the test prompts
  hidden        [N, 77, D]    CLIPTextModel last_hidden_state
  skip1, skip2  [N, 77, D]    diffusers' clip_skip=1 / 2: hidden_states[-(k+1)]
                              then final_layer_norm
  report.<id>   [77, D]       the state of each examples/reports.jsonl record,
                              with the prompt cleaned as rep2lat documents
  (and read from that file by this script)
  report_skip1.<id>  [77, D]  the same with clip_skip=1
  uncond        [77, D]       the empty prompt
  negative      [77, D]       the prompt "lateral view, text, blurry" (no
                              clip_skip: diffusers never skips for it)
and the initial latents as StableDiffusionPipeline.prepare_latents draws them
(CPU generator, float32, init_noise_sigma 1):
  latents.s42.512   [1, 4, 64, 64]  all of it
  latents.sS.R.head first 256 values for seeds 0, 1, 42 and sides 512, 768
  latents.f16.s42.512.head, latents.bf16.s42.512.head
                    the same drawn in float16 / bfloat16 (as float32)
Test prompts are stored as metadata "prompts" (a JSON list)."""
import json
import os
import re
import types

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from diffusers import StableDiffusionPipeline

from oracle_util import FIXTURES, save

ROOT = os.path.join(FIXTURES, "..", "..")
torch.manual_seed(20261128)

PROMPTS = [
    "",
    "No acute cardiopulmonary process.",
    "Small left pleural effusion. The right lung is clear.",
    "Endotracheal tube terminates 4.5 cm above the carina; a 3.2 cm nodule in the RUL.",
    "Cardiomegaly with mild pulmonary edema, bibasilar atelectasis and small bilateral effusions.",
    "Opacité rétrocardiaque — likely atelectasis (vs. pneumonia)!",
    " ".join(["Diffuse bilateral reticular opacities, greater at the bases, compatible with fibrosis."] * 8),
]

NEGATIVE = "lateral view, text, blurry"

MODELS = {
    "sd1": dict(
        folder="tiny-sd1", weights="model.safetensors", variant=None, prefix="text_model.", pad="<|endoftext|>",
        name_or_path="openai/clip-vit-large-patch14",
        config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=3,
                    hidden_act="quick_gelu", projection_dim=32, layer_norm_eps=1e-5,
                    bos_token_id=0, eos_token_id=2, pad_token_id=1)),
    "sd2": dict(
        folder="tiny-sd2", weights="model.fp16.safetensors", variant="fp16", prefix="", pad="!",
        name_or_path="hf-models/stable-diffusion-v2-768x768/tokenizer",
        config=dict(hidden_size=16, intermediate_size=48, num_attention_heads=2, num_hidden_layers=4,
                    hidden_act="gelu", projection_dim=16, layer_norm_eps=1e-5,
                    bos_token_id=0, eos_token_id=2, pad_token_id=1)),
}


def added(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def write_tokenizer(d, m):
    os.makedirs(d, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        link = os.path.join(d, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join("..", "..", "..", "clip-vocab", name), link)
    eos, bos = added("<|endoftext|>"), added("<|startoftext|>")
    write_json(os.path.join(d, "special_tokens_map.json"),
               {"bos_token": bos, "eos_token": eos, "pad_token": m["pad"], "unk_token": eos})
    write_json(os.path.join(d, "tokenizer_config.json"), {
        "add_prefix_space": False,
        "bos_token": {"__type": "AddedToken", **bos},
        "do_lower_case": True,
        "eos_token": {"__type": "AddedToken", **eos},
        "errors": "replace",
        "model_max_length": 77,
        "name_or_path": m["name_or_path"],
        "pad_token": m["pad"],
        "special_tokens_map_file": "./special_tokens_map.json",
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": {"__type": "AddedToken", **eos},
    })


def write_model_index(path, sd2):
    """As StableDiffusionPipeline.save_pretrained writes it, without a safety
    checker (SD 2.x ships none; the tiny SD 1 folder leaves it out too)."""
    write_json(path, {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDIMScheduler" if sd2 else "PNDMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })


def clean(rec):
    """rep2lat's prompt: text, else impression then findings; ___ removed,
    ASCII white space collapsed."""
    if "text" in rec:
        t = rec["text"]
    else:
        t = " ".join(rec[k] for k in ("impression", "findings") if rec.get(k))
    t = re.sub(r"_{3,}", "", t)
    return re.sub(r"[ \t\n\r\f\v]+", " ", t).strip()


def encode(model, ids, skip):
    with torch.no_grad():
        if skip == 0:
            return model(ids)[0]
        # diffusers' encode_prompt: hidden_states[-(clip_skip + 1)], then the
        # final layer norm (transformers 5 keeps it on the model itself).
        out = model(ids, output_hidden_states=True)
        hs = out.hidden_states
        assert len(hs) == model.config.num_hidden_layers + 1
        assert torch.equal(model.final_layer_norm(hs[-1]), out.last_hidden_state)
        return model.final_layer_norm(hs[-(skip + 1)])


out = {}
reports = [json.loads(l) for l in open(os.path.join(ROOT, "examples", "reports.jsonl")) if l.strip()]
for key, m in MODELS.items():
    folder = os.path.join(FIXTURES, "models", m["folder"])
    os.makedirs(folder, exist_ok=True)
    write_model_index(os.path.join(folder, "model_index.json"), key == "sd2")
    write_tokenizer(os.path.join(folder, "tokenizer"), m)

    cfg = CLIPTextConfig(vocab_size=49408, max_position_embeddings=77, attention_dropout=0.0, dropout=0.0,
                         initializer_range=0.02, initializer_factor=1.0, **m["config"])
    model = CLIPTextModel(cfg).eval()
    # Larger than the default init so the layers do more than pass the residual through.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 * ("weight" in n) + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.5 if "embedding" in n else 1.0 / p.shape[-1] ** 0.5))
    model = model.half()
    te = os.path.join(folder, "text_encoder")
    for f in ("model.safetensors", "model.fp16.safetensors"):
        if os.path.exists(os.path.join(te, f)):
            os.remove(os.path.join(te, f))
    model.save_pretrained(te, safe_serialization=True, variant=m["variant"])
    wpath = os.path.join(te, m["weights"])
    assert os.path.exists(wpath), os.listdir(te)
    if m["prefix"]:
        # Published SD checkpoints (and transformers 4) name the weights
        # text_model.*; transformers 5 writes them without the prefix and reads
        # both. tiny-sd1 has the published names, tiny-sd2 the new ones.
        sd = load_file(wpath)
        save_file({m["prefix"] + k: v for k, v in sd.items()}, wpath, metadata={"format": "pt"})
    back = CLIPTextModel.from_pretrained(te, variant=m["variant"], dtype=torch.float16)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), model.state_dict().values()))
    model = model.float()  # the references: float32 from the float16-rounded weights

    tok = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    assert tok.pad_token == m["pad"]

    def ids_of(texts):
        return tok(texts, padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt").input_ids

    ids = ids_of(PROMPTS)
    out[f"{key}.ids"] = ids.to(torch.int32)
    out[f"{key}.hidden"] = encode(model, ids, 0)
    out[f"{key}.skip1"] = encode(model, ids, 1)
    out[f"{key}.skip2"] = encode(model, ids, 2)
    out[f"{key}.uncond"] = encode(model, ids_of([""]), 0)[0]
    out[f"{key}.negative"] = encode(model, ids_of([NEGATIVE]), 0)[0]
    texts = [clean(r) for r in reports]
    states = encode(model, ids_of(texts), 0)
    skip1 = encode(model, ids_of(texts), 1)
    for i, r in enumerate(reports):
        out[f"{key}.report.{r.get('id', str(i + 1))}"] = states[i]
        out[f"{key}.report_skip1.{r.get('id', str(i + 1))}"] = skip1[i]
    print(f"{key}: hidden {tuple(out[key + '.hidden'].shape)}, |max| {out[key + '.hidden'].abs().max():.3f}")

# prepare_latents from diffusers itself, on a stand-in for the pipeline object
# (it only reads vae_scale_factor and scheduler.init_noise_sigma).
stub = types.SimpleNamespace(vae_scale_factor=8, scheduler=types.SimpleNamespace(init_noise_sigma=1.0))
for seed in (0, 1, 42):
    for side in (512, 768):
        g = torch.Generator("cpu").manual_seed(seed)
        lat = StableDiffusionPipeline.prepare_latents(stub, 1, 4, side, side, torch.float32,
                                                      torch.device("cpu"), g)
        out[f"latents.s{seed}.{side}.head"] = lat.flatten()[:256]
        if seed == 42 and side == 512:
            out["latents.s42.512"] = lat
# A pipeline loaded with torch_dtype float16 / bfloat16 draws its noise in that
# dtype (rep2lat --precision fp16 / bf16); stored widened to float32.
for name, dt in (("f16", torch.float16), ("bf16", torch.bfloat16)):
    g = torch.Generator("cpu").manual_seed(42)
    lat = StableDiffusionPipeline.prepare_latents(stub, 1, 4, 512, 512, dt, torch.device("cpu"), g)
    out[f"latents.{name}.s42.512.head"] = lat.flatten()[:256].float()

save("clip_text_ref.safetensors", out, {"prompts": json.dumps(PROMPTS)})
