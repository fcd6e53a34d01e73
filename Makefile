# Two commands for a fresh clone: `make demo` and `make test`.  The venv is rebuilt only
# when requirements.txt or setup.py change (stamp file).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
# No ROS_DOMAIN_ID here: the tests (test/conftest.py) and the demo each pick a private
# one in ROS's recommended range (icnet_ros/paths.py use_private_ros_domain).

# `make test-floor`: the core and node tests on the oldest supported library versions
# (requirements-floor.txt, icnet_ros/versions.py) in .venv-floor, rebuilt when those or
# .venv change.  Only the floor packages are installed there; torch, ROS and the rest are
# .venv's, reached through a .pth placed after .venv-floor's own site-packages (a plain
# path: .venv's own .pth files, its editable icnet_ros and its ROS bootstrapper, do not
# run, so icnet_ros is installed editable here too and the ROS libraries go on
# LD_LIBRARY_PATH).
FLOOR := .venv-floor
FLOOR_PY := $(FLOOR)/bin/python
FLOOR_STAMP := $(FLOOR)/.stamp
FLOOR_TESTS := test/test_versions.py test/test_opencv_compat.py test/test_conversions.py \
	test/test_message_arrays.py test/test_engine.py test/test_checkpoint.py test/test_bags.py \
	test/test_datasets.py test/test_geometry.py test/test_metrics.py test/test_model.py \
	test/test_drivable.py test/test_int8.py test/test_export.py test/test_evaluate.py \
	test/test_node_config.py test/test_node.py test/test_node_params.py test/test_node_lifecycle.py \
	test/test_node_drivable.py test/test_node_diagnostics.py test/test_node_encodings.py \
	test/test_node_bad_messages.py test/test_player.py test/test_dds_profile.py test/test_rclpy_humble_api.py \
	test/test_bag_recovery.py test/test_damaged.py
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: setup test test-floor demo bench gpu-check clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# icnet_ros editable for the console scripts in .venv-floor/bin (setuptools 70.1 builds
# editable wheels by itself; 80 refuses setup.cfg's [develop]); the .pth last, so that pip
# sees only .venv-floor's own packages.
$(FLOOR_STAMP): requirements-floor.txt $(STAMP)
	rm -rf $(FLOOR)
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR_PY) -m pip install --quiet --upgrade pip
	$(FLOOR_PY) -m pip install --quiet --only-binary=:all: -r requirements-floor.txt "setuptools>=70.1,<80"
	$(FLOOR_PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(FLOOR_PY) -c 'import sys, sysconfig; open(sysconfig.get_path("purelib") + "/zz_icnet_main_venv.pth", "w").write(sys.argv[1] + "\n")' "$(SITE)"
	touch $(FLOOR_STAMP)

test-floor: $(FLOOR_STAMP)
	LD_LIBRARY_PATH="$(abspath $(VENV))/lib:$(subst $(eval) ,:,$(wildcard $(SITE)/ros_*.libs))" \
	PYTHONPATH="$(CURDIR)" ICNET_FLOOR_REQUIREMENTS="$(CURDIR)/requirements-floor.txt" \
	OMP_NUM_THREADS=1 $(FLOOR_PY) -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

demo: $(STAMP)
	$(PY) -m icnet_ros.tools.demo --out output

bench: $(STAMP)
	$(PY) -m icnet_ros.bench --json output/bench.json

# On a machine with a GPU: the CUDA paths end to end in minutes (docs/gpu.md); exit 77 without CUDA.
gpu-check: $(STAMP)
	$(PY) -m icnet_ros.tools.gpu_check --out output/gpu-check

clean:
	rm -rf $(VENV) $(FLOOR) build install log output .pytest_cache
