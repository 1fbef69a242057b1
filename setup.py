"""tfdet: one-stage object detection in TensorFlow, with a production TFX pipeline.

The exact tested versions of everything are pinned in requirements.lock
(``make test`` / ``make run`` install from it); the ranges here are what the
library itself needs.
"""

from setuptools import find_packages, setup

PIPELINE = [
    "tfx==1.16.0",
    "apache-beam[gcp]==2.59.0",  # unpinned, Beam 2.7x drops dill and tfx-bsl fails to import
    "tensorflow-transform==1.16.0",
    "tensorflow-data-validation==1.16.1",
    "tensorflow-model-analysis>=0.47,<0.48",
]

setup(
    name="tfdet",
    version="0.1.0",
    description="One-stage object detection in TensorFlow with a TFX pipeline",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["tfdet", "tfdet.*"]),
    package_data={"tfdet.reporting": ["*.html.j2"]},
    install_requires=[
        "tensorflow>=2.16,<2.17",
        "tf-keras>=2.16,<2.17",
        "numpy>=1.23,<2",
        "pillow>=9",
        "pycocotools>=2.0.7",
        "safetensors>=0.4",  # weights without pickle
        "h5py>=3",  # Keras .h5 weights
        "defusedxml>=0.7",  # VOC XML without entity expansion
        "tqdm>=4.60",
        "jinja2>=3",  # the model card's page
        "matplotlib>=3.5",  # the model card's plots
    ],
    extras_require={
        "pipeline": PIPELINE,
        "kubeflow": PIPELINE + ["kfp==2.5.0"],
        "dev": ["pytest>=8", "pytest-timeout>=2", "pytest-xdist>=3", "ruff", "nbclient", "nbformat", "nbconvert",
                "ipykernel"],
    },
    entry_points={"console_scripts": ["tfdet=tfdet.cli:main"]},
)
