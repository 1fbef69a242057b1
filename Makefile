# `make run` and `make test` set everything up on a fresh machine: they (re)build the
# virtualenv from requirements.lock when it is missing or the lock / setup.py changed.
PYTHON ?= $(shell command -v python3.10 2>/dev/null || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data
# the tests run in one worker process per core (pytest-xdist); PYTEST_ARGS= runs them in one process
PYTEST_ARGS ?= -n auto

.PHONY: setup browser run data test test-slow mutation cluster cluster-down bench weights lint clean

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

# headless Chromium (Debian's package), in which the slow tests open the model cards
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium > /dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends chromium > /dev/null; } || { \
	  echo "could not install chromium: run apt-get install chromium as root, then make test-slow again"; exit 1; }

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
test-slow: setup browser
	$(PY) -m pipeline.engines.cluster fetch
	$(PY) -m pytest -m "slow or cluster" -p no:xdist

# mutation testing of the decision modules (pyproject.toml [tool.mutmut]): prints "mutation score: S"
mutation: setup
	rm -rf mutants
	$(PY) -m mutmut run --max-children 1 > /dev/null || true
	$(PY) tests/mutation_score.py

# a Flink session cluster on this machine for `python -m pipeline.local_runner --beam flink` (WORKERS=2)
WORKERS ?= 2
cluster: setup
	$(PY) -m pipeline.engines.cluster up --workers $(WORKERS)

cluster-down:
	$(PY) -m pipeline.engines.cluster down

# every measurement a user or CI reruns; each writes benchmarks/results/ and benchmarks/README.md says what it found
BENCHMARKS = input train pretrained trees peers tflite beam scale
bench: $(addprefix bench-,$(BENCHMARKS))

# make bench-NAME runs benchmarks/NAME.py (ARGS=... passes it arguments): input (the input pipeline's images/s), train
# (a zoo config on the default data), pretrained (ImageNet ResNet-50 weights from npm labelling a real photo), trees
# (tree crowns in aerial photos: the validation protocol, tfdet and KerasHub, 3 seeds, hours), peers
# (tfdet against KerasHub and Model Garden, same work, same run), tflite (after bench-train), beam (the pipeline on
# the DirectRunner and on Flink), scale (the data steps at 1k/10k/100k examples; starts and stops a cluster)
bench-%: setup
	@test -f benchmarks/$*.py || { echo "no benchmark $*: one of $(BENCHMARKS)"; exit 2; }
	$(if $(filter $*,beam scale),$(PY) -m pipeline.engines.cluster fetch)
	$(PY) benchmarks/$*.py $(ARGS)

# fetch, verify and convert the pretrained weights into $$TFDET_HOME (default ~/.cache/tfdet)
weights: setup
	$(VENV)/bin/tfdet weights fetch keras:resnet50_imagenet

lint: setup
	$(VENV)/bin/ruff check tfdet tests benchmarks models components pipeline

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache tfx_pipeline_output
