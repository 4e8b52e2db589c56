#!/usr/bin/env bash
# Builds .venv with Membrane installed (editable) and its protos compiled. Needs no root:
# `make test-unit` and `make check` run on it alone; `make setup` runs it after the
# system packages. Each step says what it does and skips itself when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

# The venv sees Debian's bcc through --system-site-packages.
if [ ! -x .venv/bin/python ]; then
  say "create .venv from /usr/bin/python3 with --system-site-packages"
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=.venv/.membrane-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  say "pip install -e '.[test,check]' into .venv"
  # (this machine's pip config names local mirror folders that may not exist: quiet those)
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,check]' 2>&1 \
    | { grep -v "^WARNING: Location 'file:" || true; }
  touch "$stamp"
else
  say "project already installed in .venv"
fi

say "compile the protos (observe/gen, agent/api/gen)"
.venv/bin/python scripts/build_protos.py

.venv/bin/python -c 'import pyroute2, grpc' && say "venv ready: .venv/bin/membrane"
