// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* ember-probes: process lifecycle, OOM kills, TCP lifetimes, run-queue and block I/O latency.
 *
 * Raw tracepoints only: they attach by name (bpf_raw_tracepoint_open), so they need no tracefs
 * and no root, only CAP_BPF + CAP_PERFMON, and cost less than classic tracepoints. Fields are
 * read with CO-RE so one object loads on any kernel with BTF; where a tracepoint's arguments
 * changed (oom:mark_victim in 6.8), a load-time check picks the layout.
 *
 * Ring-buffer records are submitted with BPF_RB_NO_WAKEUP; a record that finds `wakeup_bytes` or
 * more unread wakes the consumer (once per read of the consumer), which otherwise polls on a short
 * timer. A wakeup per record costs ~20 us of kernel time in a VM; batching brings the per-record
 * cost under 1 us. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "probes.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
#define AF_INET6 10

enum counter_index {
	COUNTER_DROPS = 0, /* ring buffer full: record lost */
	COUNTER_EVENTS = 1, /* records submitted */
	COUNTER_WAKEUPS = 2, /* records submitted with a forced wakeup */
	COUNTER_COUNT = 3,
};

/* Set by user space before load. 0 means the kernel's default (adaptive) notification. */
const volatile __u64 wakeup_bytes = 256 * 1024;
/* Set by user space before load, from the kernel's BTF: which raw argument of block_rq_issue is
 * the request (1 where the request queue still comes first). */
const volatile __u32 rq_issue_arg = 0;

/* Never read: these put each record type of probes.h in the object's BTF, so that the skeleton
 * generates it (skel::types), and src/event/raw.rs checks its Raw* mirrors against it at compile
 * time (size, every field's offset, the kinds' values). */
const volatile struct exec_event layout_exec_event;
const volatile struct exec_fail_event layout_exec_fail_event;
const volatile struct fork_event layout_fork_event;
const volatile struct exit_event layout_exit_event;
const volatile struct oom_event layout_oom_event;
const volatile struct tcp_event layout_tcp_event;
const volatile enum event_kind layout_event_kind;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024); /* resized by user space before load */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIST_COUNT);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

/* Thread id -> time it became runnable. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} runq_start SEC(".maps");

/* struct request * -> issue time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} block_start SEC(".maps");

struct tcp_birth {
	__u64 ts_ns;
	__u32 pid;
	__u32 _pad;
	char comm[TASK_COMM_LEN];
};

/* struct sock * -> when the connection was first seen and who opened it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tcp_birth);
} tcp_start SEC(".maps");

/* task_struct::state before 5.14 (renamed __state). */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* mm_struct::rss_stat before 6.2: one struct of atomic counters (since then an array of
 * percpu_counter). The type is gone from newer kernels, and so from vmlinux.h. */
struct mm_rss_stat___pre62 {
	atomic_long_t count[4]; /* NR_MM_COUNTERS */
} __attribute__((preserve_access_index));

struct mm_struct___pre62 {
	struct mm_rss_stat___pre62 rss_stat;
} __attribute__((preserve_access_index));

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v += 1;
}

static __always_inline void *reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		count(COUNTER_DROPS);
	return e;
}

/* Consumer position when the last forced wakeup was sent; all ones until the first one. */
__u64 woken_at_cons = ~0ULL;

static __always_inline void submit(void *e)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	__u64 cons;

	if (wakeup_bytes == 0) {
		flags = 0;
	} else if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		/* Wake once per read: not again until the consumer has moved since the last wakeup.
		 * Testing the level rather than the crossing matters: with records reserved on several
		 * CPUs at once, no single record may see itself take the data past the threshold, and a
		 * missed crossing used to leave the consumer to the timer until its next read. */
		cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
		if (cons != woken_at_cons) {
			woken_at_cons = cons;
			flags = BPF_RB_FORCE_WAKEUP;
			count(COUNTER_WAKEUPS);
		}
	}
	count(COUNTER_EVENTS);
	bpf_ringbuf_submit(e, flags);
}

static __always_inline void header(struct event_header *h, __u32 kind, __u32 pid)
{
	h->kind = kind;
	h->pid = pid;
	h->ts_ns = bpf_ktime_get_ns();
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline void hist_add(__u32 idx, __u64 delta_ns)
{
	struct hist *h = bpf_map_lookup_elem(&hists, &idx);
	__u32 slot;

	if (!h)
		return;
	slot = log2_u64(delta_ns / 1000);
	if (slot >= HIST_SLOTS)
		slot = HIST_SLOTS - 1;
	/* The mask keeps the verifier sure of the bound whatever clang does with the clamp. */
	barrier_var(slot);
	h->slots[slot & (HIST_SLOTS - 1)] += 1;
}

/* ---- process lifecycle ---- */

/* Linux 5.11+ hands out `current` as a BTF pointer, whose fields are read with plain loads: one
 * bpf_probe_read_kernel call per field (what BPF_CORE_READ does) costs tens of ns in a VM. The
 * exec and exit tracepoints run in the task they are about, so they use it where the kernel has
 * it; older kernels take the probe-read path (the check is resolved at load time). */
static __always_inline bool have_task_btf(void)
{
	return bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf);
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *e;
	__u64 start, end, size;
	const char *filename;
	struct mm_struct *mm;
	__u64 args[2];
	__u64 off;
	long n;

	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	/* p is current: pid and uid come from helpers, not probe reads. */
	header(&e->hdr, EVENT_EXEC, bpf_get_current_pid_tgid() >> 32);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	filename = BPF_CORE_READ(bprm, filename);
	n = bpf_probe_read_kernel_str(e->data, FILENAME_LEN, filename);
	off = n > 0 ? n : 0;
	e->filename_len = off;
	e->_pad = 0;

	if (have_task_btf()) {
		struct task_struct *t = bpf_get_current_task_btf();

		e->ppid = t->real_parent->tgid;
		mm = t->mm;
		start = mm->arg_start;
		end = mm->arg_end;
	} else {
		e->ppid = BPF_CORE_READ(p, real_parent, tgid);
		mm = BPF_CORE_READ(p, mm);
		/* arg_start and arg_end are adjacent in mm_struct: one read for both. */
		if (bpf_core_read(&args, sizeof(args), &mm->arg_start))
			args[0] = args[1] = 0;
		start = args[0];
		end = args[1];
	}
	/* Only the bytes argv takes (usually a few dozen), at most ARGV_LEN. */
	size = end > start ? end - start : 0;
	e->args_size = size;
	if (size > ARGV_LEN)
		size = ARGV_LEN;
	/* The checks again after the barriers keep the verifier sure of both bounds. */
	barrier_var(size);
	barrier_var(off);
	if (size > ARGV_LEN || off > FILENAME_LEN)
		size = 0;
	if (size && bpf_probe_read_user(e->data + off, size, (void *)start) == 0)
		e->args_len = size;
	else
		e->args_len = 0;
	submit(e);
	return 0;
}

/* ---- failed execs: sys_enter_execve keeps the arguments, sys_exit_execve reports failures ---- */

/* The syscall's number and first arguments as the exit sees them, per architecture (libbpf-cargo
 * defines __TARGET_ARCH_<arch> from the Cargo target). The number is kept apart from the
 * registers: x86-64's orig_ax, arm64's syscallno. The arguments are read with bpf_tracing.h's
 * syscall accessors: on arm64 the first one is orig_x0, x0 holding the return value by now. */
#if defined(__TARGET_ARCH_x86)
#define NR_EXECVE 59
#define NR_EXECVEAT 322
#define SYSCALL_NR(regs) BPF_CORE_READ(regs, orig_ax)
#elif defined(__TARGET_ARCH_arm64)
/* The generic table (include/uapi/asm-generic/unistd.h). */
#define NR_EXECVE 221
#define NR_EXECVEAT 281
#define SYSCALL_NR(regs) BPF_CORE_READ(regs, syscallno)
#else
#error "ember-probes knows the syscall numbers of x86-64 and arm64 only"
#endif

/* A failed execve returns to the caller with its registers, memory and argument strings as they
 * were, so the exit of the syscall alone can report it: no entry program, no map. raw_syscalls
 * sys_exit needs no tracefs (the per-syscall syscalls:sys_*_execve events do); it runs on every
 * syscall exit, and returns after one compare for the ones that succeeded. */
SEC("raw_tp/sys_exit")
int BPF_PROG(handle_sys_exit, struct pt_regs *regs, long ret)
{
	struct exec_fail_event *e;
	struct task_struct *task;
	const char *const *argv;
	const char *filename;
	const char *arg;
	__u32 off = 0;
	long nr, n;
	int i;

	if (ret >= 0)
		return 0;
	nr = SYSCALL_NR(regs);
	if (nr == NR_EXECVE) {
		filename = (const char *)PT_REGS_PARM1_CORE_SYSCALL(regs);
		argv = (const char *const *)PT_REGS_PARM2_CORE_SYSCALL(regs);
	} else if (nr == NR_EXECVEAT) {
		filename = (const char *)PT_REGS_PARM2_CORE_SYSCALL(regs);
		argv = (const char *const *)PT_REGS_PARM3_CORE_SYSCALL(regs);
	} else {
		return 0;
	}
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	header(&e->hdr, EVENT_EXEC_FAIL, bpf_get_current_pid_tgid() >> 32);
	task = (struct task_struct *)bpf_get_current_task();
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ret = ret;
	e->truncated = 0;
	e->_pad = 0;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	if (bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename) < 0)
		e->filename[0] = 0;
	for (i = 0; i < FAIL_ARGS; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			break;
		if (off >= ARGV_LEN) {
			e->truncated = 1;
			break;
		}
		/* off < ARGV_LEN and args holds 2 * ARGV_LEN: a read of ARGV_LEN always fits. */
		n = bpf_probe_read_user_str(&e->args[off & (ARGV_LEN - 1)], ARGV_LEN, arg);
		if (n <= 0)
			break;
		off += n;
	}
	if (i == FAIL_ARGS && bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) == 0 && arg)
		e->truncated = 1;
	e->args_len = off;
	submit(e);
	return 0;
}

SEC("raw_tp/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	struct fork_event *e;
	__u32 ids[2]; /* pid and tgid are adjacent in task_struct: one read for both */
	__u32 tgid;

	if (bpf_core_field_offset(child->tgid) == bpf_core_field_offset(child->pid) + 4) {
		if (bpf_core_read(&ids, sizeof(ids), &child->pid))
			return 0;
	} else {
		ids[0] = BPF_CORE_READ(child, pid);
		ids[1] = BPF_CORE_READ(child, tgid);
	}
	tgid = ids[1];
	if (ids[0] != tgid) /* a new thread, not a new process */
		return 0;
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	header(&e->hdr, EVENT_FORK, tgid);
	e->ppid = BPF_CORE_READ(child, real_parent, tgid);
	e->_pad = 0;
	bpf_get_current_comm(&e->comm, sizeof(e->comm)); /* the child has the parent's, and the parent is current */
	submit(e);
	return 0;
}

/* What an exit record carries besides the header and comm. */
struct exit_info {
	__u32 ppid;
	__u32 exit_code;
	__u64 utime_ns;
	__u64 stime_ns;
	__u64 maxrss_pages;
	__u64 start_ns;
};

#define PF_KTHREAD 0x00200000

/* do_exit() decrements signal->live before this tracepoint: 0 means the last thread. Kernel
 * threads are not processes anyone waits for. Returns false for exits not to report. */
static __always_inline bool exit_info_btf(struct exit_info *i)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct signal_struct *sig = t->signal;

	if (sig->live.counter != 0 || (t->flags & PF_KTHREAD))
		return false;
	i->ppid = t->real_parent->tgid;
	i->exit_code = t->exit_code;
	/* The task's own times plus those its dead threads left in signal_struct. */
	i->utime_ns = t->utime + sig->utime;
	i->stime_ns = t->stime + sig->stime;
	i->maxrss_pages = sig->maxrss;
	i->start_ns = t->group_leader->start_time;
	return true;
}

static __always_inline bool exit_info_probe(struct task_struct *p, struct exit_info *i)
{
	/* Each BPF_CORE_READ step is a probe read: the signal pointer is read once. */
	struct signal_struct *sig = BPF_CORE_READ(p, signal);
	__u64 own[2], dead[2];

	if (BPF_CORE_READ(sig, live.counter) != 0 || (BPF_CORE_READ(p, flags) & PF_KTHREAD))
		return false;
	i->ppid = BPF_CORE_READ(p, real_parent, tgid);
	i->exit_code = BPF_CORE_READ(p, exit_code);
	/* utime and stime are adjacent in both task_struct and signal_struct. */
	if (bpf_core_read(&own, sizeof(own), &p->utime))
		own[0] = own[1] = 0;
	if (bpf_core_read(&dead, sizeof(dead), &sig->utime))
		dead[0] = dead[1] = 0;
	i->utime_ns = own[0] + dead[0];
	i->stime_ns = own[1] + dead[1];
	i->maxrss_pages = BPF_CORE_READ(sig, maxrss);
	i->start_ns = BPF_CORE_READ(p, group_leader, start_time);
	return true;
}

SEC("raw_tp/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p)
{
	struct exit_event *e;
	struct exit_info i;

	/* p is current. */
	if (have_task_btf() ? !exit_info_btf(&i) : !exit_info_probe(p, &i))
		return 0;
	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	header(&e->hdr, EVENT_EXIT, bpf_get_current_pid_tgid() >> 32);
	e->ppid = i.ppid;
	e->exit_code = i.exit_code;
	e->utime_ns = i.utime_ns;
	e->stime_ns = i.stime_ns;
	e->maxrss_pages = i.maxrss_pages;
	e->start_ns = i.start_ns;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	submit(e);
	return 0;
}

/* ---- OOM kills ---- */

/* get_mm_counter() as the classic event reads it: the shared count, 0 when the per-CPU parts
 * not yet folded in leave it negative. Linux 6.2 made rss_stat an array of percpu_counter;
 * before it was one struct of atomic counters (resolved at load time). */
static __always_inline __u64 mm_counter(struct mm_struct *mm, int member)
{
	struct mm_struct___pre62 *old = (void *)mm;
	long count;

	if (bpf_core_type_exists(struct mm_rss_stat___pre62))
		count = BPF_CORE_READ(old, rss_stat.count[member].counter);
	else
		count = BPF_CORE_READ(mm, rss_stat[member].count);
	return count > 0 ? count : 0;
}

/* Linux 6.8 changed the raw arguments of oom:mark_victim from (int pid) to
 * (struct task_struct *task, uid_t uid), in the commit that also added total_vm and the other
 * fields to its classic record; that field's presence (resolved at load time) tells which.
 * Stable kernels took the change too (Debian's 5.10.262 and 6.1.192 have it), and there the
 * RSS counters have their pre-6.2 layout: mm_counter() reads either. The raw tracepoint needs
 * no tracefs. With the task the figures are read as the classic event computes them; with the
 * old arguments only the pid is known. */
SEC("raw_tp/mark_victim")
int handle_oom(__u64 *ctx)
{
	struct task_struct *task;
	struct oom_event *e;
	struct mm_struct *mm;

	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	e->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	e->_pad = 0;
	e->uid = 0;
	e->oom_score_adj = 0;
	e->total_vm_pages = 0;
	e->anon_rss_pages = 0;
	e->file_rss_pages = 0;
	e->shmem_rss_pages = 0;
	e->comm[0] = 0;
	if (bpf_core_field_exists(struct trace_event_raw_mark_victim, total_vm)) {
		task = (struct task_struct *)ctx[0];
		header(&e->hdr, EVENT_OOM, BPF_CORE_READ(task, pid));
		e->uid = (__u32)ctx[1];
		BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
		e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
		mm = BPF_CORE_READ(task, mm);
		if (mm) {
			e->total_vm_pages = BPF_CORE_READ(mm, total_vm);
			e->file_rss_pages = mm_counter(mm, MM_FILEPAGES);
			e->anon_rss_pages = mm_counter(mm, MM_ANONPAGES);
			e->shmem_rss_pages = mm_counter(mm, MM_SHMEMPAGES);
		}
	} else {
		header(&e->hdr, EVENT_OOM, (__u32)ctx[0]);
	}
	submit(e);
	return 0;
}

/* ---- TCP connection lifetimes ---- */

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u64 key = (__u64)sk;
	struct tcp_birth *b, nb = {};
	struct tcp_event *e;
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	const struct inet_sock *inet = (const struct inet_sock *)sk;
	__u64 flags;
	__u16 family;

	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (newstate < TCP_FIN_WAIT1) {
		/* SYN_SENT, SYN_RECV or ESTABLISHED: the connection's birth, recorded once. */
		nb.ts_ns = bpf_ktime_get_ns();
		nb.pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(&nb.comm, sizeof(nb.comm));
		bpf_map_update_elem(&tcp_start, &key, &nb, BPF_NOEXIST);
	}
	if (newstate != TCP_CLOSE)
		return 0;
	b = bpf_map_lookup_elem(&tcp_start, &key);
	if (!b) /* opened before the probe was attached, or a listener */
		return 0;
	e = reserve(sizeof(*e));
	if (!e) {
		bpf_map_delete_elem(&tcp_start, &key);
		return 0;
	}
	header(&e->hdr, EVENT_TCP, b->pid);
	e->duration_ns = e->hdr.ts_ns - b->ts_ns;
	__builtin_memcpy(e->comm, b->comm, sizeof(e->comm));
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->family = family;
	/* skc_num is already 0 here (the port was released); inet_sport survives. */
	e->sport = __builtin_bswap16(BPF_CORE_READ(inet, inet_sport));
	e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	e->_pad = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		BPF_CORE_READ_INTO((__u32 *)e->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->daddr, sk, __sk_common.skc_daddr);
	}
	/* Payload only. bytes_received counts the peer's FIN too, once tcp_fin() ran, which is
	 * what sets SOCK_DONE; bytes_acked would count our SYN and FIN, so use the payload that
	 * went out (bytes_sent) less retransmissions. */
	flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	e->rx_bytes = BPF_CORE_READ(tp, bytes_received);
	if ((flags & (1ULL << SOCK_DONE)) && e->rx_bytes > 0)
		e->rx_bytes -= 1;
	e->tx_bytes = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	bpf_map_delete_elem(&tcp_start, &key);
	submit(e);
	return 0;
}

/* ---- run-queue latency ---- */

static __always_inline long task_state(struct task_struct *t)
{
	struct task_struct___pre514 *old = (void *)t;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ(old, state);
}

static __always_inline int runq_enqueue(struct task_struct *t)
{
	__u32 pid = BPF_CORE_READ(t, pid);
	__u64 ts;

	if (!pid)
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&runq_start, &pid, &ts, BPF_ANY);
	return 0;
}

SEC("raw_tp/sched_wakeup")
int BPF_PROG(handle_wakeup, struct task_struct *p)
{
	return runq_enqueue(p);
}

SEC("raw_tp/sched_wakeup_new")
int BPF_PROG(handle_wakeup_new, struct task_struct *p)
{
	return runq_enqueue(p);
}

SEC("raw_tp/sched_switch")
int BPF_PROG(handle_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 pid;
	__u64 *tsp;
	__u64 now;

	/* A task switched out while still runnable waits in the run queue from now on. */
	if (task_state(prev) == 0 /* TASK_RUNNING */)
		runq_enqueue(prev);
	pid = BPF_CORE_READ(next, pid);
	tsp = bpf_map_lookup_elem(&runq_start, &pid);
	if (!tsp)
		return 0;
	now = bpf_ktime_get_ns();
	if (now > *tsp)
		hist_add(HIST_RUNQ, now - *tsp);
	bpf_map_delete_elem(&runq_start, &pid);
	return 0;
}

/* ---- block I/O latency ---- */

/* block_rq_issue lost its request_queue argument in mainline 5.11, and stable 5.10 kernels took
 * the change (Debian's 5.10.262 has it), so user space reads the position from the kernel's BTF
 * (rq_issue_arg); the verifier then skips the branch not taken, and a program that reads no
 * second argument attaches where there is none. Each branch loads at a constant offset: clang
 * would otherwise load ctx[rq_issue_arg], and the verifier refuses a load through a moved
 * context pointer ("dereference of modified ctx ptr"). */
static __always_inline struct request *issue_rq(unsigned long long *ctx)
{
	unsigned long long rq;

	if (rq_issue_arg == 1) {
		rq = ctx[1];
		barrier_var(rq);
	} else {
		rq = ctx[0];
	}
	return (struct request *)rq;
}

SEC("raw_tp/block_rq_issue")
int handle_rq_issue(unsigned long long *ctx)
{
	__u64 key = (__u64)issue_rq(ctx);
	__u64 ts = bpf_ktime_get_ns();

	bpf_map_update_elem(&block_start, &key, &ts, BPF_ANY);
	return 0;
}

SEC("raw_tp/block_rq_complete")
int BPF_PROG(handle_rq_complete, struct request *rq)
{
	__u64 key = (__u64)rq;
	__u64 *tsp = bpf_map_lookup_elem(&block_start, &key);
	__u64 now;

	if (!tsp)
		return 0;
	now = bpf_ktime_get_ns();
	if (now > *tsp)
		hist_add(HIST_BLOCK, now - *tsp);
	bpf_map_delete_elem(&block_start, &key);
	return 0;
}
