//! CO-RE eBPF probes with libbpf-rs: typed kernel events and a live process table.
