# Two commands do everything on a fresh machine: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN := EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/with_env.sh
PYTEST_ARGS ?=

.PHONY: setup test lint bench lock clean

setup:
	@EVENT_FM_VENV=$(abspath $(VENV)) bash scripts/setup.sh

test: setup
	$(RUN) $(PY) -m pytest -q $(PYTEST_ARGS)

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
