"""The real CLIP BPE vocabulary in Hugging Face's file layout (vocab.json +
merges.txt), built from the bpe_simple_vocab_16e6.txt.gz that open-clip-torch
ships — the same vocabulary SD 1.x (openai/clip-vit-large-patch14) and SD 2.x
(OpenCLIP ViT-H/14) tokenizers use. Written to tests/fixtures/clip-vocab/."""
import gzip
import json
import os

import open_clip
from open_clip.tokenizer import bytes_to_unicode

from oracle_util import FIXTURES

out = os.path.join(FIXTURES, "clip-vocab")
os.makedirs(out, exist_ok=True)
lines = gzip.open(open_clip.tokenizer.default_bpe()).read().decode("utf-8").split("\n")
merges = lines[1:49152 - 256 - 2 + 1]
byte_chars = list(bytes_to_unicode().values())
vocab = byte_chars + [c + "</w>" for c in byte_chars]
vocab += ["".join(m.split()) for m in merges]
vocab += ["<|startoftext|>", "<|endoftext|>"]
assert len(vocab) == 49408
with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
    json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
    f.write("#version: 0.2\n")
    for m in merges:
        f.write(m + "\n")
print(f"wrote {out}: {len(vocab)} tokens, {len(merges)} merges")
