#!/usr/bin/env bash
# Simulated recordings for the event matcher (training/configs/matcher.yaml): 24 training
# scenes (seeds 601-624, 3-4 s; street, highway, park, room with their default motion) and 12
# held-out ones (seeds 701-712, 2 s; the same four kinds, then tabletop and corridor).
# Note: scripts/simulate_varied_data.sh holds out seeds 601-612 of its own; its street 601 and
# room 608 share a kind and seed with training recordings here.
set -euo pipefail
out="${1:-data/generated/matcher_sim}"
root="$(cd "$(dirname "$0")/.." && pwd)"
# the pixel model these recordings were made with (the simulator default before the fitted one)
sim() { bash "$root/scripts/with_env.sh" event-fm simulate --resolution 240x180 --quiet \
  --refractory-us 100 --noise-rate 0.1 --leak-rate 0.05 --hot-pixel-fraction 0 "$@"; }
mkdir -p "$out"
scenes=(street highway park room)
i=0
for seed in $(seq 601 624); do
  scene=${scenes[$((i % 4))]}; i=$((i + 1))
  duration=$([ "$seed" -le 608 ] && echo 3 || echo 4)
  [ -d "$out/train_$seed" ] || sim --out "$out/train_$seed" --scene "$scene" --duration "$duration" --seed "$seed"
done
heldout=(street highway park room street highway park room tabletop corridor tabletop corridor)
i=0
for seed in $(seq 701 712); do
  scene=${heldout[$i]}; i=$((i + 1))
  [ -d "$out/heldout_$seed" ] || sim --out "$out/heldout_$seed" --scene "$scene" --duration 2 --seed "$seed"
done
echo "matcher data ready in $out"
