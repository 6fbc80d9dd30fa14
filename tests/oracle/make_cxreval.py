"""Input checkpoints for the cxreval bats tests (tests/fixtures/cxreval/):
tiny_ckpt.safetensors, a vlptrain-style checkpoint whose image encoder is a
tiny torchvision-layout ResNet (Bottleneck, layers 1/1/1/1, stem 4, planes 4)
under image_encoder.<torchvision name>, with a text tensor beside it and the
metadata vlptrain writes; wrong_arch.safetensors, the same with conv1 of 8
channels (a shape the named architecture cannot have); no_encoder.safetensors,
text tensors only. Random weights (seeded, stored as float16): these are inputs, not references."""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "cxreval")
ARCH = {"layers": [1, 1, 1, 1], "stem_width": 4, "planes": 4, "width_per_group": 64}
torch.manual_seed(0)


def bn(sd, name, ch):
    sd[name + ".weight"] = 1 + 0.1 * torch.randn(ch)
    sd[name + ".bias"] = 0.1 * torch.randn(ch)
    sd[name + ".running_mean"] = 0.1 * torch.randn(ch)
    sd[name + ".running_var"] = 1 + 0.1 * torch.rand(ch)
    sd[name + ".num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)


def conv(sd, name, o, i, k):
    sd[name + ".weight"] = torch.randn(o, i, k, k) * (2.0 / (o * k * k)) ** 0.5


def resnet_state(arch, stem_override=None):
    sd = {}
    stem = stem_override or arch["stem_width"]
    conv(sd, "conv1", stem, 3, 7)
    bn(sd, "bn1", stem)
    inp = arch["stem_width"]
    for s in range(4):
        planes = arch["planes"] * 2 ** s
        width = planes * arch["width_per_group"] // 64
        for b in range(arch["layers"][s]):
            p = f"layer{s + 1}.{b}"
            conv(sd, p + ".conv1", width, inp, 1)
            bn(sd, p + ".bn1", width)
            conv(sd, p + ".conv2", width, width, 3)
            bn(sd, p + ".bn2", width)
            conv(sd, p + ".conv3", planes * 4, width, 1)
            bn(sd, p + ".bn3", planes * 4)
            if b == 0 and (s > 0 or inp != planes * 4):
                conv(sd, p + ".downsample.0", planes * 4, inp, 1)
                bn(sd, p + ".downsample.1", planes * 4)
            inp = planes * 4
    return sd


def save(name, sd, meta):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name)
    # float16 keeps the files small (cxreval converts, as vlptrain's bf16/f16 exports)
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()}, path,
              metadata=meta)
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


meta = {"method": "convirt", "image_arch": json.dumps(ARCH), "step": "0", "generator": "tests/oracle"}
text = {"text_encoder.embeddings.word_embeddings.weight": torch.randn(10, 4)}
good = {"image_encoder." + k: v for k, v in resnet_state(ARCH).items()}
save("tiny_ckpt.safetensors", {**good, **text}, meta)
bad = {"image_encoder." + k: v for k, v in resnet_state(ARCH, stem_override=8).items()}
save("wrong_arch.safetensors", {**bad, **text}, meta)
save("no_encoder.safetensors", text, meta)
