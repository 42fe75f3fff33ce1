#!/usr/bin/env bash
# Recordings for the default model and the reproduction report (issue 9): 16 training scenes
# and 4 held-out scenes (other seeds and layouts), each held-out scene in a low-light and a
# motion-blur variant, mild and severe (all also carry the clean frames on /camera/image_clean).
set -euo pipefail
out="${1:-data/generated/repro_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# the pixel model these recipes were trained with (before the fit to the real bags)
sim() { bash "$root/scripts/with_env.sh" event-fm simulate --resolution 240x180 --quiet \
  --refractory-us 100 --noise-rate 0.1 --leak-rate 0.05 --hot-pixel-fraction 0 "$@"; }
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
  # severe: night-time light (1/100 of daylight) and a 120 ms exposure
  [ -d "$out/heldout_lowlight_severe/rec_$seed" ] || sim --out \
    "$out/heldout_lowlight_severe/rec_$seed" --scene "$scene" --duration 3 --seed "$seed" \
    --degrade lowlight --light-scale 0.01
  [ -d "$out/heldout_blur_severe/rec_$seed" ] || sim --out "$out/heldout_blur_severe/rec_$seed" \
    --scene "$scene" --duration 3 --seed "$seed" --degrade blur --exposure-ms 120
done
echo "reproduction data ready in $out"
