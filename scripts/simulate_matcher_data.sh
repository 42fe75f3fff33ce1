#!/usr/bin/env bash
# Simulated recordings for the event matcher (training/configs/matcher.yaml): 24 training
# scenes (seeds 601-624, 3-4 s) and 8 held-out ones (seeds 701-708, 2 s), every scene kind,
# seeds used by no other recipe.
set -euo pipefail
out="${1:-data/generated/matcher_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
sim() { bash "$root/scripts/with_env.sh" event-fm simulate --resolution 240x180 --quiet "$@"; }
mkdir -p "$out"
scenes=(street highway park room)
i=0
for seed in $(seq 601 624); do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  duration=$([ "$seed" -le 608 ] && echo 3 || echo 4)
  [ -d "$out/train_$seed" ] || sim --out "$out/train_$seed" --scene "$scene" --duration "$duration" --seed "$seed"
done
i=0
for seed in $(seq 701 708); do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  [ -d "$out/heldout_$seed" ] || sim --out "$out/heldout_$seed" --scene "$scene" --duration 2 --seed "$seed"
done
echo "matcher data ready in $out"
