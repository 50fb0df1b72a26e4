# pace — common tasks. `make demo` and `make test` are the two commands of the README.
CARGO ?= cargo
DEMO_IMAGE ?= pace-example/busybox:1

.PHONY: all build test docker demo demo-image lint fmt bench clean

all: build

build:
	$(CARGO) build --release

## The test suite: real git, a real Docker daemon (started when none answers), fake LLMs.
test: docker
	$(CARGO) test --all-targets -- --test-threads=4

docker:
	@scripts/start-dockerd.sh

## The example sandbox image: FROM scratch + the host's static busybox (no registry).
demo-image:
	@docker image inspect $(DEMO_IMAGE) >/dev/null 2>&1 || scripts/build-busybox-image.sh $(DEMO_IMAGE)

## Day 1 of the bundled example, offline (replay provider), tests in a real container.
demo: docker demo-image
	$(CARGO) build --release --quiet
	scripts/demo.sh target/release/pace

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

## Speed figures with their baselines (see tests/bench.rs).
bench:
	scripts/bench.sh

clean:
	$(CARGO) clean
