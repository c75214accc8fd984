# The marker workload of build-support/kernel-matrix (busybox sh; not run by hand): what the
# probe check (crates/ember-probes/examples/kernel_check.rs) must see on every kernel. The same
# script runs inside each VM and on the host.
#
#   sh kernel-matrix-workload.sh BLOCK_TARGET
#
# BLOCK_TARGET: a block device (the VM's virtio disk) or a file on one, written and read with
# O_DIRECT. The flags kernel_check gets for each marker are in kernel-matrix (check_args).
set -u
target=$1

# 1. 100 processes: fork, exec and exit each.
i=0
while [ "$i" -lt 100 ]; do
    /bin/true
    i=$((i + 1))
done

# 2. An exit code (--exit-code 42).
/bin/sh -c 'exit 42'

# 3. A failed exec: ENOENT (--failed-exec /nonexistent/ember-marker).
/nonexistent/ember-marker 2>/dev/null

# 4. A TCP connection on loopback (--tcp-port 7777): busybox nc, a listener and a client.
nc -l -p 7777 >/dev/null &
server=$!
i=0
until echo ember-marker | nc 127.0.0.1 7777 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -lt 50 ] || { echo "workload: no TCP listener on 127.0.0.1:7777" >&2; exit 1; }
    sleep 0.1
done
wait "$server"

# 5. Block I/O that bypasses the page cache (--block-io): 64 writes and 64 reads of 4 KiB.
dd if=/dev/zero of="$target" bs=4k count=64 oflag=direct conv=notrunc 2>/dev/null \
    || { echo "workload: O_DIRECT write to $target failed" >&2; exit 1; }
dd if="$target" of=/dev/null bs=4k count=64 iflag=direct 2>/dev/null \
    || { echo "workload: O_DIRECT read of $target failed" >&2; exit 1; }

# 6. An OOM kill in a memory cgroup of 32 MiB (--oom-arg bs=64M): dd's 64 MiB buffer does not
# fit. cgroup v2 where its memory controller is there (the VMs), else the v1 memory hierarchy.
group=ember-kernel-matrix-$$
v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)memory(,|$)/ { print $2; exit }' /proc/mounts)
if [ -n "$v2" ] && grep -qw memory "$v2/cgroup.controllers" 2>/dev/null; then
    echo +memory >"$v2/cgroup.subtree_control" 2>/dev/null || true
    cg=$v2/$group
    mkdir "$cg"
    echo 32M >"$cg/memory.max"
    echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
elif [ -n "$v1" ]; then
    cg=$v1/$group
    mkdir "$cg"
    echo 32M >"$cg/memory.limit_in_bytes"
else
    echo "workload: no cgroup memory controller (v2 or v1)" >&2
    exit 1
fi
# The shell joins the group, then becomes dd (busybox's sh runs its dd applet in the same
# process: the victim's command line is the shell's, which holds bs=64M too).
/bin/sh -c "echo \$\$ >$cg/cgroup.procs && exec dd if=/dev/zero of=/dev/null bs=64M count=1" \
    2>/dev/null && { echo "workload: dd was not OOM-killed in $cg" >&2; rmdir "$cg"; exit 1; }
rmdir "$cg"
exit 0
