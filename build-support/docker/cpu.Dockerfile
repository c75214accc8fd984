# syntax=docker/dockerfile:1.7
# ember's CPU image: FROM scratch, holding only the fully static insightd, the generate
# example and /version.json. No shell, no libc, no .so files.
# build-support/check-image-rootfs lays out the same root filesystem natively and runs it.
#
#   docker buildx build -f build-support/docker/cpu.Dockerfile \
#     --platform linux/amd64,linux/arm64 \
#     --build-arg EMBER_VERSION="$(cargo xtask version)" -t ember:cpu .
#
# linux/amd64 and linux/arm64: the builder stage runs on the build machine's platform and
# cross-compiles for the target's (TARGETARCH): rustup's aarch64 target and Debian's
# gcc/g++-aarch64-linux-gnu, through build-support/lib/static-build.sh (EMBER_ARCH). No stage
# runs under emulation. build-support/cross builds and tests the same arm64 binaries with
# Debian trixie's toolchain where rustup cannot download.
#
# Build arguments:
#   EMBER_VERSION     yymmddhhmm-<sha> from `cargo xtask version` (required: the build context
#                     has no .git); baked into insightd --version and /version.json
#   EMBER_REVISION    full git sha for the OCI revision label (optional)
#   BAKE_TEST_MODEL   1 bakes the pinned test model (gemma-3-270m, 242 MiB) at
#                     /models/model.gguf; default 0: mount a model there instead
#   RUST_VERSION      the Rust toolchain image tag
#   EMBER_LLAMA_CPU_VARIANTS  default: the eight ggml x86-64 CPU variants (four on arm64:
#                     armv8.0_1, armv8.2_2, armv8.6_1, armv8.6_2), one chosen at start, so the
#                     image runs on every CPU of its architecture (~38 MB); one name (e.g.
#                     haswell) makes the smaller image for that ISA and up (ember-llama-sys'
#                     README)

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS builder
ARG TARGETARCH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The build subset of build-support/apt-packages, plus pip for the fetch scripts; for another
# target architecture, its GNU cross compilers and Rust's standard library for it. Package
# versions come from the pinned base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake clang libclang-dev pkg-config file ccache binutils \
        autoconf automake autopoint flex bison gawk make python3-pip libcap2-bin \
    && if [ "$TARGETARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then \
        apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
        && rustup target add aarch64-unknown-linux-gnu; \
    fi \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# build.rs never downloads: the project's fetch script brings the pinned llama.cpp tree (its
# own layer, so source changes do not download it again).
COPY vendor/llama.cpp.toml vendor/
COPY build-support/fetch-llama-cpp build-support/
RUN build-support/fetch-llama-cpp
COPY . .
ARG EMBER_VERSION=""
ARG BAKE_TEST_MODEL=0
ARG EMBER_LLAMA_CPU_VARIANTS=""
ENV EMBER_LLAMA_CCACHE=1 CCACHE_DIR=/root/.cache/ccache CARGO_TARGET_DIR=/cargo-target \
    EMBER_ARCH=${TARGETARCH}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cargo-target,id=cargo-target-${TARGETARCH} \
    --mount=type=cache,target=/root/.cache/ccache,id=ccache-${TARGETARCH} \
    if [ -z "$EMBER_VERSION" ]; then \
        echo "error: pass --build-arg EMBER_VERSION=\$(cargo xtask version)" >&2; exit 1; \
    fi \
    && set -- \
    && if [ "$BAKE_TEST_MODEL" = 1 ]; then set -- --model "$(build-support/fetch-model | tail -n1)"; fi \
    && EMBER_REQUIRE_INSIGHTD=1 build-support/image-rootfs --backend cpu --out /rootfs "$@"

FROM scratch
ARG EMBER_VERSION=""
ARG EMBER_REVISION=""
LABEL org.opencontainers.image.title="ember insightd (cpu)" \
      org.opencontainers.image.description="eBPF telemetry and local LLM insights: one static binary, FROM scratch" \
      org.opencontainers.image.source="https://github.com/ember-rs/ember" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${EMBER_VERSION}" \
      org.opencontainers.image.revision="${EMBER_REVISION}"
COPY --from=builder /rootfs/ /
# Non-root by default (the distroless "nonroot" uid); the Kubernetes DaemonSet overrides it to
# grant the BPF capabilities (build-support/k8s/README.md says why).
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/insightd"]
