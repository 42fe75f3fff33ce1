#!/usr/bin/env bash
# The numpy floor (issue 18): Ubuntu 24.04 / ROS Jazzy machines have apt's numpy 1.26, under
# which the core must run. numpy==1.26.4 goes into a git-ignored overlay that shadows the venv's
# numpy 2, and the core's tests run against it (no ROS: the nodes' tests need the wheels' numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
overlay=.floor/numpy-1.26
if [ ! -d "$overlay/numpy" ]; then
    .venv/bin/python -m pip install -q --no-deps --target "$overlay" numpy==1.26.4
fi
export PYTHONPATH="$PWD/$overlay${PYTHONPATH:+:$PYTHONPATH}"
.venv/bin/python -c 'import numpy; assert numpy.__version__ == "1.26.4", numpy.__version__; print("numpy", numpy.__version__)'
exec scripts/with_env.sh .venv/bin/python -m pytest -q -p no:cacheprovider "$@" \
    test/test_decoders.py test/test_evt3_encoder.py test/test_io_files.py test/test_rosbag_io.py \
    test/test_representations.py test/test_windows.py test/test_masks.py \
    test/test_models_heads.py test/test_models_inference.py test/test_checkpoint_format.py \
    test/test_pipeline_core.py test/test_ingest_faults.py test/test_sim_scene.py \
    test/test_training_losses_metrics.py test/test_dataset_converters.py test/test_xfeat_teacher.py
