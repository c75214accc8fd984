# syntax=docker/dockerfile:1.7
# ember's ROCm image. AMD ships no static HIP runtime and no runtime-only image, so the final
# stage is Ubuntu plus only the runtime packages from AMD's repository (hip-runtime-amd,
# rocBLAS, hipBLAS); the kernel driver (/dev/kfd, /dev/dri) comes from the host. insightd is
# built with libstdc++ static; image-rootfs checks with readelf that it loads nothing else.
#
#   docker buildx build -f build-support/docker/rocm.Dockerfile \
#     --build-arg EMBER_VERSION="$(cargo xtask version)" -t ember:rocm .
#   docker run --device /dev/kfd --device /dev/dri ember:rocm --once
#
# Build arguments: EMBER_VERSION, EMBER_REVISION, BAKE_TEST_MODEL, RUST_VERSION,
# EMBER_LLAMA_CPU_VARIANTS as in cpu.Dockerfile, plus
#   ROCM_VERSION       AMD's rocm/dev-ubuntu-24.04 tag (builder) and apt repository (final)
#   AMDGPU_TARGET      the GPU target to compile for (one: EMBER_LLAMA_CMAKE_DEFINES separates
#                      options with ';', so a CMake list does not fit; build one image per
#                      target family)

ARG RUST_VERSION=1.95
ARG ROCM_VERSION=6.4.1

FROM rust:${RUST_VERSION}-slim-bookworm AS rust

FROM rocm/dev-ubuntu-24.04:${ROCM_VERSION}-complete AS builder
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
ARG AMDGPU_TARGET=gfx942
# ggml's HIP backend compiles with ROCm's clang; the linker finds the HIP libraries here.
ENV EMBER_LLAMA_CCACHE=1 CCACHE_DIR=/root/.cache/ccache CARGO_TARGET_DIR=/cargo-target \
    HIPCXX=/opt/rocm/llvm/bin/clang HIP_PATH=/opt/rocm LIBRARY_PATH=/opt/rocm/lib \
    EMBER_LLAMA_CMAKE_DEFINES="GPU_TARGETS=${AMDGPU_TARGET}"
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/cargo-target \
    --mount=type=cache,target=/root/.cache/ccache \
    if [ -z "$EMBER_VERSION" ]; then \
        echo "error: pass --build-arg EMBER_VERSION=\$(cargo xtask version)" >&2; exit 1; \
    fi \
    && set -- \
    && if [ "$BAKE_TEST_MODEL" = 1 ]; then set -- --model "$(build-support/fetch-model | tail -n1)"; fi \
    && EMBER_REQUIRE_INSIGHTD=1 build-support/image-rootfs --backend rocm --out /rootfs "$@"

FROM ubuntu:24.04
ARG ROCM_VERSION
# AMD's signing key and repository, then only the runtime libraries insightd links.
ADD --chmod=0644 https://repo.radeon.com/rocm/rocm.gpg.key /etc/apt/keyrings/rocm.asc
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && echo "deb [arch=amd64 signed-by=/etc/apt/keyrings/rocm.asc] https://repo.radeon.com/rocm/apt/${ROCM_VERSION} noble main" \
        >/etc/apt/sources.list.d/rocm.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends hip-runtime-amd rocblas hipblas \
    && rm -rf /var/lib/apt/lists/*
ARG EMBER_VERSION=""
ARG EMBER_REVISION=""
LABEL org.opencontainers.image.title="ember insightd (rocm)" \
      org.opencontainers.image.description="eBPF telemetry and local LLM insights on AMD GPUs: one binary and the ROCm runtime" \
      org.opencontainers.image.source="https://github.com/ember-rs/ember" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${EMBER_VERSION}" \
      org.opencontainers.image.revision="${EMBER_REVISION}"
ENV LD_LIBRARY_PATH=/opt/rocm/lib
COPY --from=builder /rootfs/ /
USER 65532:65532
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/insightd"]
