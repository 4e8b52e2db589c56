#!/usr/bin/env bash
# Installs everything Membrane needs on a fresh Debian machine, idempotently.
# Each step says what it does and skips itself when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (apt-get, bpffs mount)" >&2
  exit 1
fi

# Debian packages. bcc is Debian's python3-bpfcc (PyPI's 'bcc' is an unrelated project).
# linux-headers-<arch> is what bcc compiles the datapath against: the agent builds its own
# tree from it (agent/datapath/headers.py); nothing is linked into /lib/modules.
# chromium: the headless browser the `membrane ui` tests drive (Playwright, from the venv,
# runs Debian's /usr/bin/chromium; it never downloads a browser of its own).
debs=(python3-bpfcc python3-venv "linux-headers-$(dpkg --print-architecture)" iproute2
      etcd-server iperf3 curl containernetworking-plugins ipset iptables util-linux procps
      iputils-ping chromium)
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

# Pinned maps live on bpffs.
if ! mountpoint -q /sys/fs/bpf; then
  say "mount bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
else
  say "bpffs already mounted"
fi

bash scripts/venv.sh

# The kernel headers the agent will compile against (it finds them itself, in /usr/src).
.venv/bin/python - <<'PY' || exit 1
import sys
from agent.datapath.headers import find_headers, missing_headers_message
found = find_headers()
if found is None:
    sys.exit("setup: " + missing_headers_message())
print(f"setup: kernel headers for bcc: {found.describe()} (nothing under /lib/modules)")
PY
.venv/bin/python -c 'import bcc' && say "ready: .venv/bin/membrane (bcc imports)"
