#!/usr/bin/env bash
# Fills corpus/<target>/ from the seeds in seeds/ and from the real data in ../../shared/data
# (inventory files get a format-selector byte in front). Idempotent.
set -euo pipefail
cd "$(dirname "$0")"
shared=../../shared/data
for t in cvrf_xml cvrf_json inventory snapshot_json path_query bearer_token; do
  mkdir -p "corpus/$t"
  cp -n seeds/$t/* "corpus/$t/" 2>/dev/null || true
done
cp -n seeds/snapshot_json/* corpus/inventory/ 2>/dev/null || true
if [ -d "$shared/inventory" ]; then
  for f in "$shared"/inventory/*; do
    # Byte 0 selects Format::Auto (see fuzz_targets/inventory.rs).
    out="corpus/inventory/$(basename "$f")"
    [ -e "$out" ] || { printf '\0' > "$out"; cat "$f" >> "$out"; }
  done
fi
