# Shared by the scripts that need the dashboard's node toolchain (sourced, not run): build-ui,
# check-ui and bench-ui, so the "npm ci only when the lock changed" rule lives in one place.
#
#   ui_deps UI_DIR   installs UI_DIR/package-lock.json into UI_DIR/node_modules (git-ignored)
#                    with `npm ci`, unless the stamp says that lock is already installed
#
# The stamp is a copy of the lock file taken after a good `npm ci`: a changed lock, a
# half-finished install (no stamp) or a missing playwright-core reinstalls. Callers define die().

ui_deps() {
    local ui=$1
    local stamp="$ui/node_modules/.package-lock.stamp"
    if [ -f "$stamp" ] && cmp -s "$stamp" "$ui/package-lock.json" \
        && [ -d "$ui/node_modules/playwright-core" ]; then
        return 0
    fi
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error) \
        || die "npm ci failed in $ui: is the npm registry reachable?"
    cp "$ui/package-lock.json" "$stamp"
}
