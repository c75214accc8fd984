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

STATIC_TARGET=x86_64-unknown-linux-gnu

static_build() {
    RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
        cargo build --release --locked --target "$STATIC_TARGET" "$@"
}

static_dir() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    echo "${CARGO_TARGET_DIR:-$root/target}/$STATIC_TARGET/release"
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
