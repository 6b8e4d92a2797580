"""Install avspeech.

The Triton kernels live in the top-level ``kernels/`` folder of the repository but are installed as
``avspeech.kernels``: a PyPI package named ``kernels`` exists and other libraries import it, so we must not
shadow it in site-packages.
"""
from setuptools import find_packages, setup

# Pinned and verified together on Python 3.11 (CPU machine and the H100/H200 image share torch/triton).
INSTALL_REQUIRES = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "torchvision==0.26.0",
    "triton==3.6.0",
    "numpy==1.26.4",  # Triton 3.6's interpreter and mediapipe 0.10.21 need numpy<2
    "mediapipe==0.10.21",  # last release with mp.solutions and the models inside the wheel
    "opencv-python==4.11.0.86",
    "decord==0.6.0",
    "av==18.1.0",
    "soundfile==0.14.0",
    "einops==0.8.2",
    "espeakng-loader==0.2.4",
    "scikit-learn==1.9.1",
    "scikit-image==0.26.0",  # ships data/astronaut.png, one of the synthetic corpus' faces
    "matplotlib==3.11.2",  # ships sample_data/grace_hopper.jpg; plots
    "tqdm==4.70.1",
    "safetensors==0.8.0",
    "tensorboard==2.18.0",  # the last release that accepts mediapipe's protobuf 4
    "protobuf==4.25.9",  # mediapipe 0.10.21 needs protobuf<5
    "fast-bss-eval==0.1.4",  # BSS-eval SDR (separation metrics)
    "pesq==0.0.4",  # ITU-T P.862.2 wide-band PESQ (built from source with the compiler pip finds)
    "pystoi==0.4.1",  # STOI
    "jiwer==4.0.0",  # WER / CER (recognition metrics)
    "python_speech_features==0.6",  # AV-HuBERT's audio features (log filterbank), for its official checkpoints
    "sentencepiece==0.2.3",  # optional subword tokenizer of the recognition head (also a mediapipe dependency)
]

EXTRAS_REQUIRE = {
    "dev": [
        "pytest==9.0.3",
        "nbclient==0.11.0",
        "nbformat==5.11.1",
        "ipykernel==7.4.0",
    ],
}

# Python packages of the avspeech/ tree, plus kernels/ mapped to avspeech.kernels.
packages = find_packages(include=["avspeech", "avspeech.*"])
kernel_packages = ["avspeech.kernels" + p[len("kernels"):] for p in find_packages(include=["kernels", "kernels.*"])]

setup(
    name="avspeech",
    version="0.1.0",
    description="Audio-visual speech: lip ROIs from video, AV-HuBERT-style pretraining with a fused Triton "
    "cross-modal attention kernel, per-face separation and recognition.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=packages + kernel_packages,
    package_dir={"avspeech.kernels" + p[len("avspeech.kernels"):]: p[len("avspeech."):].replace(".", "/")
                 for p in kernel_packages},
    package_data={"avspeech": ["assets/*"], "avspeech.pretrained": ["*/*"]},  # the shipped checkpoints
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["avspeech=avspeech.cli:main"]},
)
