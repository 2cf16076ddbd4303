"""dualtalk_core: pure-Python package (no ROS import); installs with pip or colcon (ament_python)."""
from setuptools import find_packages, setup

PACKAGE = "dualtalk_core"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests"]),
    # the face statistics of the real sample clip that `dualtalk data synth` draws from
    package_data={"dualtalk_core.data": ["face_stats_real.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ],
    python_requires=">=3.10",
    # torch is installed first by `make setup` (CPU wheel, or TORCH=... for CUDA); this range
    # must admit it so pip does not pull another build.
    install_requires=[
        "torch>=2.1",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-learn>=1.3",
        "pyyaml>=6",
        "soundfile>=0.12",
        "soxr>=0.3",
        "transformers>=4.40",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "pillow>=9.1",           # drawing the `dualtalk render` preview faces
        "imageio-ffmpeg>=0.4.9",  # a static ffmpeg for `dualtalk render` MP4 + audio, no apt
    ],
    zip_safe=True,
    maintainer="DualTalk maintainers",
    maintainer_email="maintainers@dualtalk.dev",
    description="DualTalk dual-speaker 3D talking-head model, data, training, metrics, streaming.",
    license="Apache-2.0",
    entry_points={"console_scripts": ["dualtalk = dualtalk_core.cli:main"]},
)
