/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Records the BPF programs in probes.bpf.c write to the ring buffer.
 * The Rust side (src/event/raw.rs, the Raw* structs) mirrors each struct field by field, and
 * checks at compile time that its layouts match the skeleton's types generated from these. */
#ifndef EMBER_PROBES_H
#define EMBER_PROBES_H

#define TASK_COMM_LEN 16
#define FILENAME_LEN 256
#define ARGV_LEN 256
#define HIST_SLOTS 32

enum event_kind {
	EVENT_EXEC = 1,
	EVENT_FORK = 2,
	EVENT_EXIT = 3,
	EVENT_OOM = 4,
	EVENT_TCP = 5,
	EVENT_EXEC_FAIL = 6,
};

/* Indexes of the per-CPU histogram array. */
enum hist_index {
	HIST_RUNQ = 0,
	HIST_BLOCK = 1,
	HIST_COUNT = 2,
};

/* Every record starts with this header. */
struct event_header {
	__u32 kind;
	__u32 pid; /* thread-group id of the process the record is about */
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
};

struct exec_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 uid;
	__u64 cgroup_id;
	__u32 args_size; /* arg_end - arg_start: full size of argv in user memory */
	__u32 args_len; /* bytes of argv copied, right after the filename in data */
	char comm[TASK_COMM_LEN];
	__u32 filename_len; /* bytes of filename in data, its NUL included; 0 if unreadable */
	__u32 _pad;
	/* The filename, then NUL-separated argv truncated to ARGV_LEN, packed: a short command
	 * line touches two cache lines of the record instead of five. */
	char data[FILENAME_LEN + ARGV_LEN];
};

/* A failed execve: argv is read from the caller's argv array, one string after the other; args
 * has room for one more string past ARGV_LEN so every read has a constant size. */
#define FAIL_ARGS 16 /* at most this many arguments are read */
struct exec_fail_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 uid;
	__s32 ret; /* the negative errno execve returned */
	__u32 args_len; /* bytes written to args, NULs included; above ARGV_LEN means truncated */
	__u32 truncated; /* more arguments than were read */
	__u32 _pad;
	char comm[TASK_COMM_LEN];
	char filename[FILENAME_LEN];
	char args[2 * ARGV_LEN];
};

struct fork_event {
	struct event_header hdr; /* hdr.pid is the child */
	__u32 ppid;
	__u32 _pad;
	char comm[TASK_COMM_LEN];
};

struct exit_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 exit_code; /* wait(2) status: (code << 8) | signal */
	__u64 utime_ns;
	__u64 stime_ns;
	__u64 maxrss_pages;
	__u64 start_ns; /* task start, CLOCK_MONOTONIC */
	char comm[TASK_COMM_LEN];
};

struct oom_event {
	struct event_header hdr; /* hdr.pid is the victim */
	__u32 uid;
	__s32 oom_score_adj;
	__u64 total_vm_pages;
	__u64 anon_rss_pages;
	__u64 file_rss_pages;
	__u64 shmem_rss_pages;
	__u32 trigger_pid; /* task that ran into the limit */
	__u32 _pad;
	char comm[TASK_COMM_LEN];
};

struct tcp_event {
	struct event_header hdr;
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u64 duration_ns;
	char comm[TASK_COMM_LEN];
};

/* One log2 histogram: slot i counts values in [2^i, 2^(i+1)) microseconds (slot 0 also holds 0). */
struct hist {
	__u64 slots[HIST_SLOTS];
};

#endif
