# pace — common tasks. `make demo` and `make test` are the two commands of the README.
CARGO ?= cargo
DEMO_IMAGE ?= pace-example/busybox:1

.PHONY: all build test docker demo demo-image lint fmt bench reliability conformance clean static release images images-push images-check image-go image-node image-temurin image-dotnet

MUSL_TARGET := x86_64-unknown-linux-musl
STATIC_BIN := target/$(MUSL_TARGET)/release/pace
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# X.Y: the pin the templates and `pace init` write (`pace/runner-go:0.1`).
MINOR := $(shell echo $(VERSION) | cut -d. -f1,2)
LANGS := go node temurin dotnet
# Empty: each Dockerfile's pinned official image. `make images BASE_IMAGE=...` overrides all
# four; BASE_IMAGE_ARM64 / BASE_IMAGE_AMD64 one architecture (a local base is per architecture).
BASE_IMAGE ?=
BASE_IMAGE_ARM64 ?=
BASE_IMAGE_AMD64 ?=
IMAGE_BUILD_ARGS ?=
# One classic `docker build --platform` per entry, joined by `make images-push` (images/README.md).
PLATFORMS ?= linux/amd64 linux/arm64
# `make images-push REGISTRY=host[:port]/path`: where the images go; the digests go to IMAGES_RECORD.
REGISTRY ?=
IMAGES_RECORD ?= dist/images.txt
# Local repository prefix: $(IMAGE_PREFIX)/runner-<lang> (the revision and source labels: scripts/images.sh).
IMAGE_PREFIX ?= pace
IMAGES_ENV = PLATFORMS="$(PLATFORMS)" BASE_IMAGE="$(BASE_IMAGE)" BASE_IMAGE_ARM64="$(BASE_IMAGE_ARM64)" \
  BASE_IMAGE_AMD64="$(BASE_IMAGE_AMD64)" IMAGE_BUILD_ARGS="$(IMAGE_BUILD_ARGS)" IMAGES_RECORD="$(IMAGES_RECORD)" IMAGE_PREFIX="$(IMAGE_PREFIX)"

all: build

build:
	$(CARGO) build --release

## The test suite: real git, a real Docker daemon (started when none answers), fake LLMs.
test: docker
	$(CARGO) test --all-targets -- --test-threads=4

docker:
	@scripts/start-dockerd.sh

## The example sandbox image: FROM scratch + the host's static busybox (no registry;
## busybox-static is installed when it is missing, as root with apt-get).
demo-image:
	@docker image inspect $(DEMO_IMAGE) >/dev/null 2>&1 || scripts/build-busybox-image.sh $(DEMO_IMAGE)

## Day 1 of the bundled example, offline (replay provider), tests in a real container.
## The binary is where cargo puts it: under CARGO_TARGET_DIR when that is set.
DEMO_BIN = $(or $(CARGO_TARGET_DIR),target)/release/pace
demo: docker demo-image
	$(CARGO) build --release --quiet
	scripts/demo.sh "$(DEMO_BIN)"

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

## Speed figures with their baselines (see tests/bench.rs).
bench:
	scripts/bench.sh

## pace against a real llama.cpp server and real weights (builds C++ once; docs/conformance.md).
conformance:
	scripts/conformance.sh

## Faults, hostile model output, bad input, property tests and load (docs/reliability.md).
reliability:
	scripts/reliability.sh

## A stripped, fully static musl binary (needs `musl-tools`); checked and measured.
static:
	@rustup target list --installed | grep -q $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	@command -v musl-gcc >/dev/null || { echo "make static: install musl-tools (apt-get install musl-tools)"; exit 1; }
	$(CARGO) build --release --locked --target $(MUSL_TARGET)
	@file $(STATIC_BIN) | grep -Eq 'static(-pie)? linked|statically linked' || { file $(STATIC_BIN); echo "make static: not a static binary"; exit 1; }
	@! ldd $(STATIC_BIN) 2>&1 | grep -q '=>' || { echo "make static: links shared libraries"; exit 1; }
	@echo "$(STATIC_BIN): static, $$(stat -c %s $(STATIC_BIN)) bytes ($$(( $$(stat -c %s $(STATIC_BIN)) / 1024 / 1024 )) MiB; target < 15 MiB)"

## Static binaries for x86_64 and aarch64 in dist/ with SHA256SUMS and a CycloneDX SBOM
## (zig via cargo-zigbuild from PyPI as cross linker; the aarch64 one is run under qemu-user).
release:
	scripts/release.sh

## The four runner images for each of PLATFORMS: pace/runner-<lang>:$(VERSION)-<arch>, and
## :$(VERSION), :$(MINOR) and :latest for the host's architecture (scripts/images.sh).
images: static
	$(IMAGES_ENV) scripts/images.sh build

$(addprefix image-,$(LANGS)): image-%: static
	$(IMAGES_ENV) scripts/images.sh build $*

## Push the built images to REGISTRY, one multi-arch manifest list per tag ($(VERSION), $(MINOR),
## latest), the digests in IMAGES_RECORD, then pull every one back by digest.
images-push:
	$(IMAGES_ENV) scripts/images.sh push "$(REGISTRY)"

## The slow image checks (docs/images.md): both architectures on local bases, a real TLS
## registry round trip, pace under qemu, a day inside the pulled image, gitlab-ci-local.
images-check: docker
	$(CARGO) test --test all images:: -- --ignored --test-threads=1

clean:
	$(CARGO) clean
