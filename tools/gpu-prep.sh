#!/bin/sh
# tools/gpu-prep.sh — run on a development machine (Debian, with network)
# before a GPU session: fills the two ignored folders that `make gpu-check`
# takes to a GPU host that can reach nothing outside it:
#   .debs/  the Debian packages synthcxr builds against (OpenBLAS OpenMP,
#           msgpack-c, jansson, libpng, libjpeg, zlib headers), unpacked there
#           into a private root, never over the host's own /;
#   .whl/   diffusers (and importlib_metadata) for the diffusers side of the
#           benchmark; the GPU image has PyTorch and the rest (Python 3.12).
# Both are git-ignored; name them in the device tool's `carry`.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .debs .whl
( cd .debs && apt-get download libopenblas0-openmp libopenblas-openmp-dev libgfortran5 libmsgpack-dev \
    libmsgpackc2 libjansson-dev libjansson4 libpng-dev libpng16-16 zlib1g-dev libjpeg62-turbo-dev \
    libjpeg62-turbo 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 )
py=$(tests/oracle/setup-venv.sh)
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1 importlib_metadata==8.7.0 >&2
echo "gpu-prep: $(ls .debs | wc -l) packages in .debs/, $(ls .whl | wc -l) wheels in .whl/ ($(du -sh .debs .whl | awk '{print $1}' | paste -sd+ -))" >&2
