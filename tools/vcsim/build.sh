#!/bin/sh
# Builds bin/sendense-vcsim offline in GOPATH mode against Debian's govmomi
# (golang-github-vmware-govmomi-dev). The Go build cache lives in bin/ too,
# so rebuilds after a source change take seconds.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/bin"
cd "$here/src/sendense-vcsim"
GO111MODULE=off GOFLAGS= GOPATH="$here:/usr/share/gocode" GOCACHE="$here/bin/.gocache" \
  go build -o "$here/bin/sendense-vcsim.$$" .
# Atomic replace: test suites running in parallel may build at the same time.
mv -f "$here/bin/sendense-vcsim.$$" "$here/bin/sendense-vcsim"
