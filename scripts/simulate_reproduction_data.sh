#!/usr/bin/env bash
# Recordings for the default model and the reproduction report (issue 9): 16 training scenes
# and 4 held-out scenes (other seeds and layouts), each held-out scene in a low-light and a
# motion-blur variant (both bags also carry the clean frames on /camera/image_clean).
set -euo pipefail
out="${1:-data/generated/repro_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
sim() { bash "$root/scripts/with_env.sh" event-fm simulate --resolution 240x180 --quiet "$@"; }
mkdir -p "$out"
scenes=(street highway park room)
i=0
for seed in $(seq 301 316); do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  [ -d "$out/train/rec_$seed" ] || sim --out "$out/train/rec_$seed" --scene "$scene" --duration 4 --seed "$seed"
done
i=0
for seed in 401 402 403 404; do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  for degrade in lowlight blur; do
    [ -d "$out/heldout_$degrade/rec_$seed" ] || sim --out "$out/heldout_$degrade/rec_$seed" \
      --scene "$scene" --duration 3 --seed "$seed" --degrade "$degrade"
  done
done
echo "reproduction data ready in $out"
