#!/usr/bin/env bash
# Makes a delta benchmark pair DEST/app-rebuild/{old,new}.tar: the sample
# app built twice with rustc -O, differing by one source line, each as the
# layer an app image would ship. Then: petrel-delta bench DEST
set -euo pipefail
dest=${1:?usage: scripts/app-rebuild-pair.sh DEST}
src="$(dirname "$0")/../simulator/src/bin/petrel-sample-app.rs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest/app-rebuild"
for v in old new; do
  mkdir -p "$work/$v/app"
  cp "$src" "$work/$v/main.rs"
  if [ "$v" = new ]; then
    # the one-line change: a different start-up message
    sed -i 's/started (pid {})/started, rebuilt (pid {})/' "$work/$v/main.rs"
  fi
  rustc -O --edition 2021 -o "$work/$v/app/sample-app" "$work/$v/main.rs"
  tar -C "$work/$v" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$dest/app-rebuild/$v.tar" app
done
ls -l "$dest/app-rebuild"
