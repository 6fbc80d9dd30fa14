"""Shared by the oracle scripts: where fixtures go and how they are saved."""
import os

import torch
from safetensors.torch import save_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")


def save(name, tensors, meta=None):
    """Write tests/fixtures/<name> from a dict of tensors (made contiguous)."""
    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, name)
    save_file({k: v.detach().clone().contiguous() for k, v in tensors.items()}, path,
              metadata={"generator": "tests/oracle", "torch": torch.__version__, **(meta or {})})
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")
