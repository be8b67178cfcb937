#!/bin/sh
# Builds bin/sendense-vcsim offline in GOPATH mode against Debian's govmomi
# (golang-github-vmware-govmomi-dev). The Go build cache lives in bin/ too,
# so rebuilds after a source change take seconds.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/bin"
cd "$here/src/sendense-vcsim"
GO111MODULE=off GOFLAGS= GOPATH="$here:/usr/share/gocode" GOCACHE="$here/bin/.gocache" \
  go build -o "$here/bin/sendense-vcsim.tmp" .
mv "$here/bin/sendense-vcsim.tmp" "$here/bin/sendense-vcsim"
