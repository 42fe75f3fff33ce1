#!/usr/bin/env bash
# Simulated recordings for the demo checkpoint: 8 training scenes (3 s) and 2 held-out ones.
set -euo pipefail
out="${1:-data/generated/default_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$out"
scenes=(street highway park room)
i=0
for seed in 101 102 103 104 105 106 107 108; do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  [ -d "$out/train_$seed" ] || bash "$root/scripts/with_env.sh" event-fm simulate --refractory-us 100 --noise-rate 0.1 --leak-rate 0.05 --hot-pixel-fraction 0 \
    --out "$out/train_$seed" --scene "$scene" --duration 3 --resolution 240x180 --seed "$seed" --quiet
done
for seed in 201 202; do
  [ -d "$out/val_$seed" ] || bash "$root/scripts/with_env.sh" event-fm simulate --refractory-us 100 --noise-rate 0.1 --leak-rate 0.05 --hot-pixel-fraction 0 \
    --out "$out/val_$seed" --scene street --duration 2 --resolution 240x180 --seed "$seed" --quiet
done
