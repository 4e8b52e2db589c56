#!/usr/bin/env bash
# Installs everything Membrane needs on a fresh Debian machine, idempotently.
# Each step says what it does and skips itself when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (apt-get, kernel headers link, bpffs mount)" >&2
  exit 1
fi

# Debian packages. bcc is Debian's python3-bpfcc (PyPI's 'bcc' is an unrelated project).
debs=(python3-bpfcc python3-venv linux-headers-amd64 iproute2 etcd-server iperf3 curl
      containernetworking-plugins ipset iptables util-linux procps iputils-ping)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
else
  say "Debian packages already installed"
fi

# bcc compiles against kernel headers; the running kernel ships none, so link Debian's
# linux-headers-amd64 tree (and its -common tree) where bcc looks.
kver=$(uname -r)
hdr=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n 1)
if [ -z "$hdr" ] || [ -z "$common" ]; then
  echo "setup: no linux-headers tree under /usr/src after installing linux-headers-amd64" >&2
  exit 1
fi
mkdir -p "/lib/modules/$kver"
for pair in "build:$hdr" "source:$common"; do
  name=${pair%%:*}; target=${pair#*:}
  if [ "$(readlink "/lib/modules/$kver/$name" 2>/dev/null)" != "$target" ]; then
    say "link /lib/modules/$kver/$name -> $target"
    ln -sfn "$target" "/lib/modules/$kver/$name"
  else
    say "kernel headers already linked as /lib/modules/$kver/$name"
  fi
done

# Pinned maps live on bpffs.
if ! mountpoint -q /sys/fs/bpf; then
  say "mount bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
else
  say "bpffs already mounted"
fi

bash scripts/venv.sh
.venv/bin/python -c 'import bcc' && say "ready: .venv/bin/membrane (bcc imports)"
