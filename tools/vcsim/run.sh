#!/bin/sh
# Starts the VMware stand-in, e.g.
#   tools/vcsim/run.sh --config tools/vcsim/demo-vms.json --state-dir /tmp/vcsim --listen 127.0.0.1:8989
# Builds bin/sendense-vcsim first when it is missing or older than its
# sources. Prints one JSON line {"event":"ready","url":...,"username":...,
# "password":...,"harnessUrl":...,"thumbprint":...} when it accepts calls;
# SIGTERM/SIGINT stop it and every qemu-storage-daemon it started.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin="$here/bin/sendense-vcsim"
if [ ! -x "$bin" ] || [ -n "$(find "$here/src" -name '*.go' -newer "$bin" | head -n 1)" ]; then
  "$here/build.sh" >&2
fi
exec "$bin" "$@"
