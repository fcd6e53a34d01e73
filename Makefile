# Two commands for a fresh clone: `make demo` and `make test`.  The venv is rebuilt only
# when requirements.txt or setup.py change (stamp file).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
# No ROS_DOMAIN_ID here: the tests (test/conftest.py) and the demo each pick a private
# one in ROS's recommended range (icnet_ros/paths.py use_private_ros_domain).

.PHONY: setup test demo bench gpu-check clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m icnet_ros.tools.demo --out output

bench: $(STAMP)
	$(PY) -m icnet_ros.bench --json output/bench.json

# On a machine with a GPU: the CUDA paths end to end in minutes (docs/gpu.md); exit 77 without CUDA.
gpu-check: $(STAMP)
	$(PY) -m icnet_ros.tools.gpu_check --out output/gpu-check

clean:
	rm -rf $(VENV) build install log output .pytest_cache
