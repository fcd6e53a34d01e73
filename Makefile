# Two commands for a fresh clone: `make demo` and `make test`.  The venv is rebuilt only
# when requirements.txt or setup.py change (stamp file).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
# No ROS_DOMAIN_ID here: the tests (test/conftest.py) and the demo each pick a private
# one in ROS's recommended range (icnet_ros/paths.py use_private_ros_domain).

# `make test-floor`: a second ROS distro on the oldest supported libraries
# (requirements-floor.txt, icnet_ros/versions.py, docs/distros.md) in .venv-floor, rebuilt
# when those or .venv change.  ROS 2 Jazzy's rclpy, Fast DDS 2.14 and messages come from
# the package index, so the node tests run there on a second real middleware; only PyTorch
# is .venv's, linked in by test/floor_venv.py (none of .venv's Kilted is visible there).
# FLOOR_TESTS: the core on the old libraries; JAZZY_TESTS: every node test (test_node*.py
# and the Nav2 stand-in tests by their globs); test/test_distros.py keeps that list whole.
FLOOR := .venv-floor
FLOOR_PY := $(FLOOR)/bin/python
FLOOR_STAMP := $(FLOOR)/.stamp
FLOOR_TESTS := test/test_versions.py test/test_opencv_compat.py test/test_conversions.py \
	test/test_message_arrays.py test/test_engine.py test/test_checkpoint.py test/test_bags.py \
	test/test_datasets.py test/test_geometry.py test/test_metrics.py test/test_model.py \
	test/test_drivable.py test/test_int8.py test/test_export.py test/test_evaluate.py \
	test/test_node_config.py test/test_bag_recovery.py test/test_damaged.py test/test_probability.py \
	test/test_network_maps.py
JAZZY_TESTS := $(wildcard test/test_node*.py) test/test_player.py test/test_dds_profile.py \
	test/test_rclpy_api.py test/test_optional.py test/test_param_client.py \
	test/test_bench.py::test_cli_writes_the_issue_json_with_the_node_and_a_soak test/test_demo.py::test_demo_end_to_end \
	test/test_docs.py::test_the_node_declares_what_the_table_holds_and_creates_only_documented_topics \
	$(wildcard test/test_nav2*.py)
SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))')

.PHONY: setup test test-floor demo bench gpu-check clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Two pytest-xdist workers: most node tests wait on DDS and timers, so the two cores are
# half idle in one process (6 min in one, 3.5 in two).  Each worker has its own ROS domain
# (test/conftest.py).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist worksteal

# icnet_ros editable for the console scripts in .venv-floor/bin (setuptools 70.1 builds
# editable wheels by itself; 80 refuses setup.cfg's [develop]); PyTorch linked in last, so
# that pip sees only .venv-floor's own packages.  empy (ROS's build-time templating) is
# published as source only.
$(FLOOR_STAMP): requirements-floor.txt test/floor_venv.py $(STAMP)
	rm -rf $(FLOOR)
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR_PY) -m pip install --quiet --upgrade pip
	$(FLOOR_PY) -m pip install --quiet --only-binary=:all: --no-binary=empy -r requirements-floor.txt \
		"setuptools>=70.1,<80"
	$(FLOOR_PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(FLOOR_PY) test/floor_venv.py "$(SITE)"
	touch $(FLOOR_STAMP)

# .venv-floor's own ROS bootstrapper sets LD_LIBRARY_PATH to its Jazzy libraries: none
# inherited (a sourced ROS, or a process of .venv that bootstrapped already).
test-floor: $(FLOOR_STAMP)
	env -u LD_LIBRARY_PATH -u _ROS_WHEELS_BOOTSTRAP_COMPLETE -u AMENT_PREFIX_PATH \
	PYTHONPATH="$(CURDIR)" ICNET_FLOOR_REQUIREMENTS="$(CURDIR)/requirements-floor.txt" \
	OMP_NUM_THREADS=1 $(FLOOR_PY) -m pytest -q -p no:cacheprovider $(FLOOR_TESTS) $(JAZZY_TESTS)

demo: $(STAMP)
	$(PY) -m icnet_ros.tools.demo --out output

bench: $(STAMP)
	$(PY) -m icnet_ros.bench --json output/bench.json

# On a machine with a GPU: the CUDA paths end to end in minutes (docs/gpu.md); exit 77 without CUDA.
gpu-check: $(STAMP)
	$(PY) -m icnet_ros.tools.gpu_check --out output/gpu-check

clean:
	rm -rf $(VENV) $(FLOOR) build install log output .pytest_cache
