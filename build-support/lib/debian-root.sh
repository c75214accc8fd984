# A Debian root made with `debootstrap --variant=minbase`, kept between runs, and commands run
# in it with chroot (sourced, not run): build-support/check-msrv (trixie's rustc 1.85) and
# build-support/cross (trixie's rustc-web 1.96 and the aarch64 cross toolchain).
#
# The caller sets, then calls the functions in this order:
#   ROOT_DIR       the root's folder
#   ROOT_SUITE     the Debian suite (trixie)
#   ROOT_PACKAGES  array: what apt installs in it (--no-install-recommends)
#   ROOT_ARCHES    array, may be empty: foreign architectures dpkg accepts (arm64)
#   ROOT_NAME      the caller's name, for messages
#
#   root_make      reuses a complete root made for the same suite, mirror, architectures and
#                  packages (a marker file says so), else makes it afresh and installs them;
#   root_mount_base  makes the root a private mount of its own, mounts /proc and /dev in it,
#                  copies this machine's resolver and local CAs in;
#   root_bind SRC DEST [ro]  bind-mounts SRC at DEST inside the root;
#   root_inside CMD...  runs CMD in the root with a clean environment (add VAR=value with env);
#   root_unmount_all    unmounts everything under the root (the caller's EXIT trap calls it).
#
# Downloads: with EMBER_APT_CACHE set (CI: /var/cache/ember/apt), debootstrap and apt keep the
# .deb files in EMBER_APT_CACHE/<suite>/ and use them again; both check every file against the
# mirror's signed index before installing it, so only verified packages are ever reused.
# The host's apt sources are never touched. Nothing is ever removed while a mount is inside.

ROOT_MIRROR=${EMBER_DEBIAN_MIRROR:-http://deb.debian.org/debian}

root_die() { printf '%s: error: %s\n' "${ROOT_NAME:-debian-root}" "$*" >&2; exit 1; }

# Every mount point at or under the root, deepest first (from mountinfo: `findmnt -R` would
# list nothing while the root itself is no mount point).
root_mounts() {
    awk -v r="$ROOT_DIR" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

root_unmount_all() {
    local m
    for _ in 1 2 3; do
        for m in $(root_mounts); do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
        [ -z "$(root_mounts)" ] && return 0
        sleep 1
    done
    return 1
}

root_inside() {
    chroot "$ROOT_DIR" /usr/bin/env -i \
        HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        "$@"
}

root_bind() {
    local src=$1 dest=$ROOT_DIR$2
    if [ -d "$src" ]; then mkdir -p "$dest"; else mkdir -p "$(dirname "$dest")" && touch "$dest"; fi
    mount --bind "$src" "$dest"
    [ "${3:-}" != ro ] || mount -o remount,bind,ro "$dest"
}

# The apt cache of this suite, bound over the root's archive folder while apt runs.
root_apt_cache() {
    [ -n "${EMBER_APT_CACHE:-}" ] || return 0
    mkdir -p "$EMBER_APT_CACHE/$ROOT_SUITE/partial"
    echo "$EMBER_APT_CACHE/$ROOT_SUITE"
}

root_make() {
    command -v debootstrap >/dev/null \
        || root_die "debootstrap not found: build-support/dev setup installs it (build-support/apt-packages)"
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
        || root_die "no /usr/share/keyrings/debian-archive-keyring.gpg: apt-get install debian-archive-keyring"
    local marker=$ROOT_DIR/.ember-root-complete
    local key="suite=$ROOT_SUITE mirror=$ROOT_MIRROR variant=minbase arches=${ROOT_ARCHES[*]} packages=${ROOT_PACKAGES[*]}"
    local log_dir cache
    log_dir=$(dirname "$ROOT_DIR")
    cache=$(root_apt_cache)
    if [ -f "$marker" ] && [ "$(head -n1 "$marker")" = "$key" ] \
        && grep -qx "VERSION_CODENAME=$ROOT_SUITE" "$ROOT_DIR/etc/os-release" 2>/dev/null; then
        echo "reusing the complete $ROOT_SUITE root in $ROOT_DIR (made $(sed -n 2p "$marker"))"
        return 0
    fi
    if [ -e "$ROOT_DIR" ]; then
        root_unmount_all || root_die "mounts remain under $ROOT_DIR: $(root_mounts | tr '\n' ' ')"
        rm -rf --one-file-system "$ROOT_DIR"
    fi
    echo "debootstrap --variant=minbase $ROOT_SUITE from $ROOT_MIRROR into $ROOT_DIR${cache:+ (packages cached in $cache)}"
    mkdir -p "$log_dir"
    debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
        ${cache:+--cache-dir="$cache"} "$ROOT_SUITE" "$ROOT_DIR" "$ROOT_MIRROR" >"$log_dir/debootstrap.log" 2>&1 \
        || { tail -n 30 "$log_dir/debootstrap.log" >&2; root_die "debootstrap failed (log above, $log_dir/debootstrap.log)"; }
    tail -n 1 "$log_dir/debootstrap.log"
    # main only: the toolchains under test come from there.
    echo "deb $ROOT_MIRROR $ROOT_SUITE main" >"$ROOT_DIR/etc/apt/sources.list"
    # Without it the root's services would try to start during apt-get install.
    printf '#!/bin/sh\nexit 101\n' >"$ROOT_DIR/usr/sbin/policy-rc.d"
    chmod +x "$ROOT_DIR/usr/sbin/policy-rc.d"
    local arch
    for arch in "${ROOT_ARCHES[@]}"; do
        chroot "$ROOT_DIR" dpkg --add-architecture "$arch"
    done
    mount -t proc proc "$ROOT_DIR/proc"
    cp /etc/resolv.conf "$ROOT_DIR/etc/resolv.conf"
    [ -z "$cache" ] || mount --bind "$cache" "$ROOT_DIR/var/cache/apt/archives"
    echo "apt-get install --no-install-recommends ${ROOT_PACKAGES[*]} (in the root)"
    root_inside apt-get update -qq || root_die "apt-get update in the $ROOT_SUITE root failed: is $ROOT_MIRROR reachable?"
    root_inside apt-get install -y -qq --no-install-recommends "${ROOT_PACKAGES[@]}" >"$log_dir/apt.log" 2>&1 \
        || { tail -n 30 "$log_dir/apt.log" >&2; root_die "apt-get install in the $ROOT_SUITE root failed (log above, $log_dir/apt.log)"; }
    if [ -z "$cache" ]; then
        root_inside apt-get clean
    fi
    root_unmount_all || root_die "mounts remain under $ROOT_DIR after apt"
    echo "packages in the root: $(root_inside dpkg-query -W -f='.\n' | wc -l)"
    printf '%s\n%s\n' "$key" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker"
}

root_mount_base() {
    # The root is a private mount of its own: nothing mounted under it propagates to the host's
    # other mount namespaces.
    mount --bind "$ROOT_DIR" "$ROOT_DIR"
    mount --make-private "$ROOT_DIR"
    mount -t proc proc "$ROOT_DIR/proc"
    mount --rbind /dev "$ROOT_DIR/dev"
    mount --make-rslave "$ROOT_DIR/dev"
    # This machine's resolver and local CAs, each run: a kept root may come from another machine.
    cp /etc/resolv.conf "$ROOT_DIR/etc/resolv.conf"
    rm -rf "$ROOT_DIR/usr/local/share/ca-certificates"
    mkdir -p "$ROOT_DIR/usr/local/share/ca-certificates"
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -r /usr/local/share/ca-certificates/. "$ROOT_DIR/usr/local/share/ca-certificates/"
    fi
    if root_inside sh -c 'command -v update-ca-certificates' >/dev/null; then
        # Its rehash warns about the bundle it writes itself: shown only if it fails.
        local ca_log
        ca_log=$(root_inside update-ca-certificates --fresh 2>&1) || { echo "$ca_log" >&2; root_die "update-ca-certificates in the root failed"; }
    fi
}
