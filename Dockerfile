# The tfdet pipeline image for Kubeflow Pipelines: TFX 1.16.0 plus the project, installed from the lock.
# Not built on the development machines (they have no Docker engine); see README "Kubeflow".
FROM gcr.io/tfx-oss-public/tfx:1.16.0

WORKDIR /tfdet
COPY requirements.lock setup.py README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY tfdet/ tfdet/
COPY pipeline/ pipeline/
COPY components/ components/
COPY models/ models/
RUN pip install --no-cache-dir --no-deps -e .

# Pretrained backbone weights baked into the image (sha256-checked at build time), so that Trainer pods
# need no download: the zoo's ImageNet entries read them from $TFDET_HOME.
ENV TFDET_HOME=/opt/tfdet
RUN tfdet weights fetch keras:resnet50_imagenet

# Beam's Flink job server (built by Maven from Beam's artifacts, sha256-checked), for `--beam flink`: the path is
# configs.KUBEFLOW_FLINK_ARGS' --flink_job_server_jar.
RUN apt-get update && apt-get install -y --no-install-recommends openjdk-17-jre-headless maven \
    && rm -rf /var/lib/apt/lists/* && python -m pipeline.engines.cluster fetch

# the commit the image was built from, recorded with every model it trains (docker build --build-arg TFDET_COMMIT=...)
ARG TFDET_COMMIT=unknown
ENV TFDET_COMMIT=$TFDET_COMMIT

# tf_keras for TensorFlow's Keras (SavedModel export, TFT and TFMA need Keras 2); the components import
# models.* and components.* by module path from the repository root.
ENV TF_USE_LEGACY_KERAS=1 \
    PYTHONPATH=/tfdet \
    PYTHONWARNINGS=ignore::FutureWarning
