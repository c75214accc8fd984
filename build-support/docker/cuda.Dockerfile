# syntax=docker/dockerfile:1.7
# ember's CUDA image. The final stage is NVIDIA's smallest runtime base (cuda:*-base, which
# holds no CUDA libraries we use): insightd links cudart and cuBLAS statically and libstdc++
# statically; only glibc and the driver's libcuda.so.1 (mounted by the NVIDIA container
# toolkit) are loaded at run time. image-rootfs checks that with readelf.
#
#   docker buildx build -f build-support/docker/cuda.Dockerfile \
#     --build-arg EMBER_VERSION="$(cargo xtask version)" -t ember:cuda .
#   docker run --gpus all ember:cuda --once
#
# Build arguments: EMBER_VERSION, EMBER_REVISION, BAKE_TEST_MODEL, RUST_VERSION,
# EMBER_LLAMA_CPU_VARIANTS as in cpu.Dockerfile, plus
#   CUDA_VERSION             the nvidia/cuda image tag prefix (toolkit and base)
#   CUDA_ARCHITECTURES       CMAKE_CUDA_ARCHITECTURES (fewer: a shorter build)

ARG RUST_VERSION=1.95
ARG CUDA_VERSION=12.8.1

FROM rust:${RUST_VERSION}-slim-bookworm AS rust

FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The build subset of build-support/apt-packages, plus pip for the fetch scripts.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake clang libclang-dev pkg-config file ccache binutils \
        autoconf automake autopoint flex bison gawk make python3-pip libcap2-bin \
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
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
ENV EMBER_LLAMA_CCACHE=1 CCACHE_DIR=/root/.cache/ccache CARGO_TARGET_DIR=/cargo-target \
    EMBER_LLAMA_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES} EMBER_LLAMA_CUDA_PATH=/usr/local/cuda
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cargo-target \
    --mount=type=cache,target=/root/.cache/ccache \
    if [ -z "$EMBER_VERSION" ]; then \
        echo "error: pass --build-arg EMBER_VERSION=\$(cargo xtask version)" >&2; exit 1; \
    fi \
    && set -- \
    && if [ "$BAKE_TEST_MODEL" = 1 ]; then set -- --model "$(build-support/fetch-model | tail -n1)"; fi \
    && EMBER_REQUIRE_INSIGHTD=1 build-support/image-rootfs --backend cuda --out /rootfs "$@"

FROM nvidia/cuda:${CUDA_VERSION}-base-ubuntu24.04
ARG EMBER_VERSION=""
ARG EMBER_REVISION=""
LABEL org.opencontainers.image.title="ember insightd (cuda)" \
      org.opencontainers.image.description="eBPF telemetry and local LLM insights on NVIDIA GPUs: one binary, CUDA linked statically" \
      org.opencontainers.image.source="https://github.com/ember-rs/ember" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${EMBER_VERSION}" \
      org.opencontainers.image.revision="${EMBER_REVISION}"
# The NVIDIA container toolkit mounts the driver (libcuda.so.1) for these capabilities.
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=builder /rootfs/ /
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/insightd"]
