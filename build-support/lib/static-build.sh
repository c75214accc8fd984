# Shared by the scripts that build ember fully static (sourced, not run): check-static-chroot,
# check-execsnoop-chroot and image-rootfs, so the crt-static recipe lives in one place.
#
#   static_build CARGO_BUILD_ARGS...   cargo build --release --locked for STATIC_TARGET with
#                                      crt-static (add -p/--example/--bin/--features yourself)
#   static_dir                         prints the folder those builds land in
#   require_static FILE...             fails unless `file` calls each FILE statically linked
#
# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, which must stay
# dynamic host programs (README "Static binaries").
#
# EMBER_ARCH (amd64 or arm64; default: this machine's) picks the target. arm64 on an x86-64
# machine is a cross build: the C and C++ parts (llama.cpp, SQLite, libbpf, jemalloc) and the
# link go through the GNU cross toolchain (Debian's gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu)
# unless CC_/CXX_/AR_aarch64_unknown_linux_gnu and the linker are set already; the Rust target
# must be installed (`rustup target add aarch64-unknown-linux-gnu`). Without them, static_build
# runs in build-support/cross's Debian trixie root, which has both, and static_dir names its
# target folder (target/cross/arm64/target).

case "${EMBER_ARCH:-$(uname -m)}" in
    amd64 | x86_64) STATIC_TARGET=x86_64-unknown-linux-gnu ;;
    arm64 | aarch64) STATIC_TARGET=aarch64-unknown-linux-gnu ;;
    *)
        echo "error: EMBER_ARCH=${EMBER_ARCH:-} (this machine: $(uname -m)): ember builds for amd64 and arm64" >&2
        return 1
        ;;
esac
if [ "$STATIC_TARGET" = aarch64-unknown-linux-gnu ]; then
    if [ "$(uname -m)" != aarch64 ]; then
        export CC_aarch64_unknown_linux_gnu=${CC_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-gcc}
        export CXX_aarch64_unknown_linux_gnu=${CXX_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-g++}
        export AR_aarch64_unknown_linux_gnu=${AR_aarch64_unknown_linux_gnu:-aarch64-linux-gnu-ar}
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=${CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER:-aarch64-linux-gnu-gcc}
    fi
    # jemalloc fixes its page size when it is built: 64 KiB serves kernels with 4, 16 or
    # 64 KiB pages (Debian's arm64 kernels have 4, RHEL's and Oracle's 64).
    export JEMALLOC_SYS_WITH_LG_PAGE=${JEMALLOC_SYS_WITH_LG_PAGE:-16}
fi

# Whether this machine builds for STATIC_TARGET itself: always for its own architecture; for
# aarch64 from elsewhere, when it has the GNU cross compiler and Rust's aarch64 standard library.
# Otherwise static_build runs in build-support/cross's trixie root, which has both.
static_build_here() {
    [ "$STATIC_TARGET" = aarch64-unknown-linux-gnu ] && [ "$(uname -m)" != aarch64 ] || return 0
    command -v "$CC_aarch64_unknown_linux_gnu" >/dev/null \
        && [ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/aarch64-unknown-linux-gnu/lib" ]
}

static_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd
}

static_build() {
    if ! static_build_here; then
        echo "static-build: no aarch64 toolchain here: building in build-support/cross's root" >&2
        # shellcheck disable=SC2016 # expanded in the root
        "$(static_root)/build-support/cross" arm64 run \
            bash -c '. build-support/lib/static-build.sh && static_build "$@"' static_build "$@"
        return
    fi
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --locked --target "$STATIC_TARGET" "$@"
}

static_dir() {
    if ! static_build_here; then
        echo "$(static_root)/target/cross/arm64/target/$STATIC_TARGET/release"
        return
    fi
    echo "${CARGO_TARGET_DIR:-$(static_root)/target}/$STATIC_TARGET/release"
}

require_static() {
    local bin description
    for bin in "$@"; do
        description=$(file -b "$bin")
        echo "file $(basename "$bin"): $description"
        case "$description" in
            *"statically linked"* | *"static-pie linked"*) ;;
            *)
                echo "error: $bin is not statically linked (built without crt-static, or a" \
                    "dependency forces dynamic linking: see README \"Static binaries\")" >&2
                return 1
                ;;
        esac
    done
}
