# Two commands do everything on a fresh machine: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN := EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/with_env.sh
PYTEST_ARGS ?=

.PHONY: setup test test-full lint bench lock clean demo demo-bag train-smoke train-default reproduction test-floor
SIM := data/generated/default_sim

setup:
	@EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/setup.sh

test: setup
	$(RUN) $(PY) -m pytest -q $(PYTEST_ARGS)

# The full-size path (issue 21): DUNE ViT-B/14 and DINOv2 ViT-S/14 at 448 px with random weights
# in the official layouts, distilled, exported, run in perception_node, tiled (~10 min on 2 cores).
test-full: setup
	$(RUN) $(PY) -m pytest -q -m full_size test/test_full_size.py $(PYTEST_ARGS)

test-floor: setup  # the core's tests under numpy 1.26 (Ubuntu 24.04's apt numpy)
	scripts/test_numpy_floor.sh

lint: setup
	$(RUN) $(PY) -m ruff check .

bench: setup
	$(RUN) $(PY) -m pip install -q faery expelliarmus tonic evlib
	$(RUN) $(PY) benchmarks/decode.py
	$(RUN) $(PY) benchmarks/representations.py

lock: setup
	( echo "# Exact versions for reproducible setups (pip constraints). Regenerate: make lock"; \
	  $(PY) -m pip freeze | grep -v -E "^(-e|event[_-]fm|event_camera_msgs|event_array_msgs|dvs_msgs|prophesee_event_msgs|tf2_msgs)" \
	  | grep -v " @ " | sort -f ) > requirements/lock.txt

clean:
	rm -rf build out .pytest_cache

# The main job on the embedded default: node graph + bag replay over DDS + evaluation.
demo: setup
	$(RUN) $(PY) -m event_fm.cli.main eval demo/bag --checkpoint models/default --out out/demo

# Regenerate the shipped demo recording (held-out seed, not in any training set).
demo-bag: setup
	rm -rf demo/bag
	$(RUN) $(PY) -m event_fm.cli.main simulate --out demo/bag --scene street --duration 2 \
	  --refractory-us 100 --noise-rate 0.1 --leak-rate 0.05 --hot-pixel-fraction 0 \
	  --resolution 240x180 --seed 999

# The smoke recipe end to end in minutes (a quick check of the training module; its checkpoint
# goes to out/models/smoke, the shipped default comes from train-default).
train-smoke: setup
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_default_data.sh $(SIM)
	for step in data teacher distill heads evaluate; do \
	  $(RUN) $(PY) -m event_fm.cli.main train distill $$step \
	  --config training/configs/demo_smoke.yaml || exit 1; done
	$(RUN) $(PY) -m event_fm.cli.main train distill export \
	  --config training/configs/demo_smoke.yaml --to out/models/smoke

# The shipped models/default from scratch (training/configs/varied.yaml): simulate the
# reproduction's and the varied recordings (~15 min), teacher 2500 -> heads 400 -> distillation
# 1500 steps with mirroring, export (~25 min of training on 2 CPU cores).
train-default: setup
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_reproduction_data.sh data/generated/repro_sim
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_varied_data.sh data/generated/varied_sim
	$(RUN) $(PY) -m event_fm.cli.main train distill rows --config training/configs/varied.yaml \
	  --rows default
	$(RUN) $(PY) -m event_fm.cli.main train distill export \
	  --config training/configs/varied.yaml --to models/default

# The reproduction report: every ablation row of the street-axis recipe, the no-teacher
# baseline, the held-out evaluation and docs/reproduction.{md,json,png} (about 1.5 h on 2 CPU
# cores; finished stages are reused). Its 'default' row (the default model before issue 16's
# varied data) goes to out/models/reproduction; the shipped models/default is train-default's.
reproduction: setup
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_reproduction_data.sh data/generated/repro_sim
	$(RUN) $(PY) -m event_fm.cli.main train distill report \
	  --config training/configs/default.yaml --docs docs
	$(RUN) $(PY) -m event_fm.cli.main train distill export \
	  --config training/configs/default.yaml --to out/models/reproduction

# Event-to-image reconstruction (LLM-EvRep, issue 11): Tencode/frame pairs from the default
# shards, the Sobel-only and the Sobel + judge generators, the held-out report in
# docs/reconstruction.{md,json,*.png}, the shipped models/reconstruction (about 40 min on a
# shared 2-core CPU). Needs out/train/default (make reproduction) for shards and the judge.
.PHONY: reconstruct-report
RECON := OMP_NUM_THREADS=1 EVENT_FM_VENV=$(abspath $(VENV)) nice -n 5 bash scripts/with_env.sh \
  $(PY) -m event_fm.cli.main train reconstruct
reconstruct-report: setup
	$(RECON) data
	$(RECON) fit --losses sobel
	$(RECON) fit --losses sobel+judge
	$(RECON) report --docs docs
	$(RECON) export --to models/reconstruction

# Motion forecasting (E-Motion, issues 10, 20): 20 ms voxel frames (3 bins, 128x128) from the
# simulated recordings (scripts/simulate_forecast_data.sh) and the real bags, the diffusion forecaster and
# the SimVP-style baseline, reward alignment, the shipped models/forecast and the report in
# docs/forecast.{md,json,*.png} (about 1.5 h on a 2-core CPU; SEG_CHECKPOINT: the model whose
# segmentation scores the forecasts downstream).
.PHONY: forecast-report
SEG_CHECKPOINT ?= models/default
FORECAST := OMP_NUM_THREADS=1 EVENT_FM_VENV=$(abspath $(VENV)) nice -n 5 bash scripts/with_env.sh \
  $(PY) -m event_fm.cli.main train forecast
forecast-report: setup
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_forecast_data.sh data/generated/forecast_sim
	$(FORECAST) data
	$(FORECAST) fit --model diffusion
	$(FORECAST) fit --model simvp
	$(FORECAST) align
	$(FORECAST) fewstep
	$(FORECAST) export --to models/forecast
	$(FORECAST) report --docs docs --segmentation-checkpoint $(SEG_CHECKPOINT)

# Generative event pretraining, GEP stage 2 (issues 11, 20): the reproduction's recordings and its
# 'default' row (the distilled student with its teacher and heads, out/train/default; finished
# stages are reused) -> tokens of its aligned encoders -> the causal transformer predicting the
# update over a fitted linear extrapolation with a depth term, and five variants -> next-window
# prediction vs copy-last and mean-of-last-two on the held-out recordings -> docs/gep.{md,json,*.png}.
.PHONY: gep-report
GEP := OMP_NUM_THREADS=1 EVENT_FM_VENV=$(abspath $(VENV)) nice -n 5 bash scripts/with_env.sh \
  $(PY) -m event_fm.cli.main train gep
gep-report: setup
	EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/simulate_reproduction_data.sh data/generated/repro_sim
	$(RUN) $(PY) -m event_fm.cli.main train distill rows --config training/configs/default.yaml \
	  --rows default
	$(GEP) fit --config training/configs/gep.yaml --into fit_nodepth --set fit.depth_weight=0.0
	$(GEP) fit --config training/configs/gep.yaml --into fit_depth05 --set fit.depth_weight=0.05
	$(GEP) fit --config training/configs/gep.yaml --into fit_mean2 --set model.reference=mean_last2 \
	  fit.validation_recordings=0 model.dropout=0.0 fit.depth_weight=0.0
	$(GEP) fit --config training/configs/gep.yaml --into fit_events --set model.with_frames=false \
	  fit.depth_weight=0.0
	$(GEP) fit --config training/configs/gep.yaml --into fit_grid --set "model.agg_grid=[6, 8]" model.dropout=0.0 \
	  fit.depth_weight=0.0 --steps 600
	$(GEP) report --config training/configs/gep.yaml --docs docs
