#!/usr/bin/env bash
# Simulated recordings for the forecaster (training/configs/forecast.yaml, issue 20): 48 training
# recordings (seeds 901-948, 3 s): every scene kind under every camera motion, twice, half of them
# with real photographs on their surfaces; 12 held-out ones (seeds 951-962, 2 s): every kind
# under two motions. The pixel model is the simulator's default (fitted to the real driver bags).
set -euo pipefail
out="${1:-data/generated/forecast_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
sim() { bash "$root/scripts/with_env.sh" event-fm simulate --resolution 240x180 --quiet "$@"; }
mkdir -p "$out"
scenes=(street highway park room tabletop corridor)
motions=(forward handheld rotation translation)
seed=901
for repeat in 0 1; do
  for scene in "${scenes[@]}"; do
    for motion in "${motions[@]}"; do
      photos=$([ $(((seed + repeat) % 2)) -eq 0 ] && echo 0.5 || echo 0)
      [ -d "$out/train/rec_$seed" ] || sim --out "$out/train/rec_$seed" --scene "$scene" \
        --motion "$motion" --photo-textures "$photos" --duration 3 --seed "$seed"
      seed=$((seed + 1))
    done
  done
done
seed=951
for scene in "${scenes[@]}"; do
  for motion in handheld forward; do
    [ "$scene" = tabletop ] || [ "$scene" = corridor ] || [ "$motion" = forward ] || motion=rotation
    [ -d "$out/heldout/rec_$seed" ] || sim --out "$out/heldout/rec_$seed" --scene "$scene" \
      --motion "$motion" --photo-textures 0.5 --duration 2 --seed "$seed"
    seed=$((seed + 1))
  done
done
echo "forecast data ready in $out"
