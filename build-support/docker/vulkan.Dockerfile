# syntax=docker/dockerfile:1.7
# ember's Vulkan image. Vulkan has no vendor runtime image, so the final stage is Ubuntu with
# only the Khronos loader (libvulkan1) from its packages; the GPU driver (ICD) comes from the
# host (the NVIDIA container toolkit with the graphics capability, or /dev/dri plus a driver
# package: see VULKAN_DRIVERS). insightd is built with libstdc++ static and loads only glibc
# and libvulkan.so.1; image-rootfs checks that with readelf.
#
#   docker buildx build -f build-support/docker/vulkan.Dockerfile \
#     --build-arg EMBER_VERSION="$(cargo xtask version)" -t ember:vulkan .
#
# Build arguments: EMBER_VERSION, EMBER_REVISION, BAKE_TEST_MODEL, RUST_VERSION,
# EMBER_LLAMA_CPU_VARIANTS as in cpu.Dockerfile, plus
#   UBUNTU_VERSION    base of both stages
#   VULKAN_DRIVERS    extra driver packages for the final stage, e.g. mesa-vulkan-drivers
#                     (RADV, ANV, lavapipe on the CPU); default none: the host provides one

ARG RUST_VERSION=1.95
ARG UBUNTU_VERSION=24.04

FROM rust:${RUST_VERSION}-slim-bookworm AS rust

FROM ubuntu:${UBUNTU_VERSION} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The build subset of build-support/apt-packages, the Vulkan headers and shader compiler, and
# pip for the fetch scripts.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake clang libclang-dev pkg-config file ccache binutils \
        autoconf automake autopoint flex bison gawk make python3-pip libcap2-bin ca-certificates \
        libvulkan-dev glslc spirv-headers \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo RUSTUP_HOME=/usr/local/rustup PATH=/usr/local/cargo/bin:$PATH
WORKDIR /src
COPY vendor/llama.cpp.toml vendor/
COPY build-support/fetch-llama-cpp build-support/
RUN build-support/fetch-llama-cpp
COPY . .
ARG EMBER_VERSION=""
ARG BAKE_TEST_MODEL=0
ARG EMBER_LLAMA_CPU_VARIANTS=""
ENV EMBER_LLAMA_CCACHE=1 CCACHE_DIR=/root/.cache/ccache CARGO_TARGET_DIR=/cargo-target
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cargo-target \
    --mount=type=cache,target=/root/.cache/ccache \
    if [ -z "$EMBER_VERSION" ]; then \
        echo "error: pass --build-arg EMBER_VERSION=\$(cargo xtask version)" >&2; exit 1; \
    fi \
    && set -- \
    && if [ "$BAKE_TEST_MODEL" = 1 ]; then set -- --model "$(build-support/fetch-model | tail -n1)"; fi \
    && EMBER_REQUIRE_INSIGHTD=1 build-support/image-rootfs --backend vulkan --out /rootfs "$@"

FROM ubuntu:${UBUNTU_VERSION}
ARG VULKAN_DRIVERS=""
# The loader is the one library the binary links that is not glibc; no .so is copied.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 ${VULKAN_DRIVERS} \
    && rm -rf /var/lib/apt/lists/*
ARG EMBER_VERSION=""
ARG EMBER_REVISION=""
LABEL org.opencontainers.image.title="ember insightd (vulkan)" \
      org.opencontainers.image.description="eBPF telemetry and local LLM insights on any Vulkan GPU: one binary and the Vulkan loader" \
      org.opencontainers.image.source="https://github.com/ember-rs/ember" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${EMBER_VERSION}" \
      org.opencontainers.image.revision="${EMBER_REVISION}"
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=graphics,compute,utility
COPY --from=builder /rootfs/ /
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/insightd"]
