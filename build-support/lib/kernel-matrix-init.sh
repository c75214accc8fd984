#!/bin/sh
# /init of build-support/kernel-matrix's initramfs (busybox sh, PID 1 in the VM; not run by
# hand). Mounts what the probes and the workload need, loads the virtio disk's modules, runs
# the probe check with the marker workload, then insightd --once, and powers off. Every line
# the host reads starts with "km:", "check:" or "insightd:"; the host applies the verdict.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mkdir -p /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "km: booted $(uname -r) in $(cut -d' ' -f1 /proc/uptime) s"
[ -e /sys/kernel/btf/vmlinux ] || echo "km: error: no /sys/kernel/btf/vmlinux"

# The virtio disk's modules (the built-in ones are absent), in dependency order as far as the
# host knew it (modules.order): one whose dependencies are not loaded yet is tried again.
pending=$(cat /lib/modules.order 2>/dev/null)
for _ in 1 2 3 4 5; do
    left=
    for ko in $pending; do
        insmod "/lib/modules/$ko" 2>/dev/null || left="$left $ko"
    done
    pending=$left
    [ -n "$pending" ] || break
done
for ko in $pending; do
    insmod "/lib/modules/$ko" || echo "km: error: insmod $ko failed"
done
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || echo "km: error: no /dev/vda (virtio disk)"

# The probe check: every probe, the marker workload. Its arguments come from the host.
start=$(cut -d' ' -f1 /proc/uptime)
# shellcheck disable=SC2046 # one argument per word, as written by the host
kernel_check $(cat /check-args) -- /bin/sh /workload.sh /dev/vda
echo "km: kernel_check exit $? at $(cut -d' ' -f1 /proc/uptime) s (started $start)"

# insightd as it ships: --require-all-probes; when that fails, once more without, so that the
# report names the probe that is down and why. A loop of execs keeps events coming meanwhile.
# One that has not exited 60 s after its 2 s (under TCG a run takes a few seconds) is hung: its
# threads' states, wait channels and kernel stacks are printed and it is killed, so the row fails
# with where it hung rather than at the host's time limit.
run_insightd() {
    insightd --once --probe-mode bpf --duration 2s "$@" >/tmp/report 2>&1 &
    pid=$!
    deadline=$(($(cut -d. -f1 /proc/uptime) + 60))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(cut -d. -f1 /proc/uptime)" -ge "$deadline" ]; then
            echo "km: error: insightd (pid $pid) did not exit within 60 s; its threads:"
            for task in /proc/"$pid"/task/*; do
                echo "km: hung: $(cat "$task/comm") $(cut -d' ' -f3 "$task/stat") wchan=$(cat "$task/wchan" 2>/dev/null)"
                sed 's/^/km: hung:   /' "$task/stack" 2>/dev/null
            done
            kill -9 "$pid"
            break
        fi
        /bin/true
        sleep 0.05
    done
    wait "$pid"
    rc=$?
    sed 's/^/insightd: /' /tmp/report
    return "$rc"
}
run_insightd --require-all-probes
rc=$?
echo "km: insightd exit $rc with --require-all-probes"
if [ "$rc" -ne 0 ]; then
    run_insightd
    echo "km: insightd exit $? without --require-all-probes"
fi
echo "km: done at $(cut -d' ' -f1 /proc/uptime) s"
poweroff -f
