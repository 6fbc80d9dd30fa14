#!/bin/sh
# tools/install-deps.sh — installs the Debian packages synthcxr needs to build,
# test and run, when any is missing. As root it runs apt-get; otherwise it
# prints the exact command and fails.
set -eu
pkgs="build-essential libpng-dev libmsgpack-dev libopenblas-dev libopenblas-openmp-dev
libjansson-dev libjpeg62-turbo-dev pngcheck parallel jq bats bats-assert bats-support groff gnuplot-nox
python3 python3-msgpack"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
cmd="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
  echo "synthcxr: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends $missing >&2
else
  echo "synthcxr: missing Debian packages:$missing" >&2
  echo "synthcxr: run as root:  apt-get update && $cmd" >&2
  exit 1
fi
