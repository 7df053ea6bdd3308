// SPDX-License-Identifier: GPL-2.0
// AMOSKYS syscall sensor: exec (with parent and argv), connect, accept and
// opens under watched path prefixes, reported through one ring buffer.
//
// Tracepoint contexts follow the kernel's stable format files
// (/sys/kernel/tracing/events/*/format). Kernel structs are read with CO-RE:
// the minimal definitions below carry preserve_access_index, so libbpf-style
// relocations against the running kernel's BTF fix the offsets at load time.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define AF_INET 2
#define AF_INET6 10

#define KIND_EXEC 1
#define KIND_CONNECT 2
#define KIND_ACCEPT 3
#define KIND_OPEN 4

#define RECORD_VERSION 1
#define PATH_LEN 256
#define ARGS_LEN 512
#define PREFIXES 8
#define PREFIX_LEN 64

struct task_struct {
	struct task_struct *real_parent;
	int tgid;
	struct mm_struct *mm;
} __attribute__((preserve_access_index));

struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
} __attribute__((preserve_access_index));

// Shared record header: userspace parses it (sensors/src/ebpf/records.rs).
struct header {
	__u16 version;
	__u16 kind;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	char comm[16];
};

struct exec_record {
	struct header h;
	__u32 args_len;
	char filename[PATH_LEN];
	char args[ARGS_LEN];
};

struct net_record {
	struct header h;
	__u16 family;
	__u16 port;
	__u32 fd;
	__s64 ret;
	__u8 addr[16];
};

struct open_record {
	struct header h;
	__u32 flags;
	char path[PATH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Watched path prefixes, NUL-terminated; an empty entry ends the list.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PREFIXES);
	__type(key, __u32);
	__type(value, char[PREFIX_LEN]);
} watch SEC(".maps");

// accept4: the peer address buffer, from entry to exit, per thread.
struct accept_args {
	__u64 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct accept_args);
} accepts SEC(".maps");

static __always_inline void fill_header(struct header *h, __u16 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	h->version = RECORD_VERSION;
	h->kind = kind;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->ppid = BPF_CORE_READ(task, real_parent, tgid);
	h->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

struct exec_ctx {
	__u64 common;
	__u32 data_loc_filename;
	__s32 pid;
	__s32 old_pid;
};

SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct exec_ctx *ctx)
{
	struct exec_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	fill_header(&r->h, KIND_EXEC);
	__u32 off = ctx->data_loc_filename & 0xFFFF;
	bpf_probe_read_kernel_str(r->filename, sizeof(r->filename), (void *)ctx + off);

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	__u64 len = end > start ? end - start : 0;
	if (len > ARGS_LEN - 1)
		len = ARGS_LEN - 1;
	// The mask is a no-op here; it proves the bound to the verifier.
	len &= ARGS_LEN - 1;
	r->args_len = 0;
	if (len > 0 && bpf_probe_read_user(r->args, len, (void *)start) == 0)
		r->args_len = len;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

struct connect_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 fd;
	__u64 addr;
	__u64 addrlen;
};

// Reads a sockaddr from user memory; returns 0 for IPv4/IPv6, else -1.
static __always_inline int read_sockaddr(struct net_record *r, __u64 uaddr)
{
	__u16 family = 0;
	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return -1;
	r->family = family;
	if (family == AF_INET) {
		bpf_probe_read_user(&r->port, 2, (void *)(uaddr + 2));
		bpf_probe_read_user(r->addr, 4, (void *)(uaddr + 4));
		return 0;
	}
	if (family == AF_INET6) {
		bpf_probe_read_user(&r->port, 2, (void *)(uaddr + 2));
		bpf_probe_read_user(r->addr, 16, (void *)(uaddr + 8));
		return 0;
	}
	return -1;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int handle_connect(struct connect_ctx *ctx)
{
	struct net_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r->addr, 0, sizeof(r->addr));
	r->port = 0;
	if (read_sockaddr(r, ctx->addr)) {
		bpf_ringbuf_discard(r, 0);
		return 0;
	}
	fill_header(&r->h, KIND_CONNECT);
	r->fd = (__u32)ctx->fd;
	r->ret = 0;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

struct accept_enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 fd;
	__u64 addr;
	__u64 addrlen;
	__u64 flags;
};

struct sys_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

static __always_inline int accept_enter(struct accept_enter_ctx *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct accept_args args = { .addr = ctx->addr };
	bpf_map_update_elem(&accepts, &tid, &args, 0);
	return 0;
}

static __always_inline int accept_exit(struct sys_exit_ctx *ctx)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct accept_args *args = bpf_map_lookup_elem(&accepts, &tid);
	if (!args)
		return 0;
	__u64 uaddr = args->addr;
	bpf_map_delete_elem(&accepts, &tid);
	if (ctx->ret < 0)
		return 0;
	struct net_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r->addr, 0, sizeof(r->addr));
	r->port = 0;
	r->family = 0;
	read_sockaddr(r, uaddr);
	fill_header(&r->h, KIND_ACCEPT);
	r->fd = (__u32)ctx->ret;
	r->ret = ctx->ret;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int handle_accept4_enter(struct accept_enter_ctx *ctx) { return accept_enter(ctx); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int handle_accept4_exit(struct sys_exit_ctx *ctx) { return accept_exit(ctx); }

SEC("tracepoint/syscalls/sys_enter_accept")
int handle_accept_enter(struct accept_enter_ctx *ctx) { return accept_enter(ctx); }

SEC("tracepoint/syscalls/sys_exit_accept")
int handle_accept_exit(struct sys_exit_ctx *ctx) { return accept_exit(ctx); }

struct openat_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 dfd;
	__u64 filename;
	__u64 flags;
	__u64 mode;
};

// Per-CPU scratch for the path, too large for the BPF stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[PATH_LEN]);
} scratch SEC(".maps");

static __always_inline int matches(const char *path, const char *prefix)
{
	for (int i = 0; i < PREFIX_LEN; i++) {
		char p = prefix[i];
		if (p == 0)
			return i > 0;
		if (path[i] != p)
			return 0;
	}
	return 1;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int handle_openat(struct openat_ctx *ctx)
{
	__u32 zero = 0;
	char *path = bpf_map_lookup_elem(&scratch, &zero);
	if (!path)
		return 0;
	if (bpf_probe_read_user_str(path, PATH_LEN, (void *)ctx->filename) <= 0)
		return 0;
	int hit = 0;
	for (__u32 i = 0; i < PREFIXES; i++) {
		__u32 key = i;
		char *prefix = bpf_map_lookup_elem(&watch, &key);
		if (!prefix || prefix[0] == 0)
			break;
		if (matches(path, prefix)) {
			hit = 1;
			break;
		}
	}
	if (!hit)
		return 0;
	struct open_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	fill_header(&r->h, KIND_OPEN);
	r->flags = (__u32)ctx->flags;
	bpf_probe_read_kernel_str(r->path, sizeof(r->path), path);
	bpf_ringbuf_submit(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
