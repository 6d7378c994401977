/*
 * no_sysv: runs a program with the kernel's System V IPC switched off.
 *
 *     no_sysv PROGRAM [ARGS...]
 *
 * A seccomp filter makes every System V IPC system call (shmget, shmat,
 * shmdt, shmctl, semget, semop, semtimedop, semctl, msgget, msgsnd, msgrcv,
 * msgctl, and the ipc(2) multiplexer where the ABI has one) fail with ENOSYS,
 * then the program is executed. The filter is inherited by every child and
 * survives every exec, so a program that works under no_sysv provably got
 * its IPC from somewhere other than the kernel. A system call made under any
 * other architecture than the one this was compiled for kills the process,
 * so no second ABI can reach the calls by other numbers.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "no_sysv knows the system call numbers of x86_64 and aarch64 only"
#endif

#ifdef SECCOMP_RET_KILL_PROCESS
#define KILL SECCOMP_RET_KILL_PROCESS
#else
#define KILL SECCOMP_RET_KILL
#endif

static const unsigned int sysv_calls[] = {
	__NR_shmget, __NR_shmat, __NR_shmdt, __NR_shmctl,
	__NR_semget,
#ifdef __NR_semop
	__NR_semop,
#endif
#ifdef __NR_semtimedop
	__NR_semtimedop,
#endif
	__NR_semctl,
	__NR_msgget, __NR_msgsnd, __NR_msgrcv, __NR_msgctl,
#ifdef __NR_ipc
	__NR_ipc,
#endif
};
#define SYSV_CALLS (sizeof sysv_calls / sizeof sysv_calls[0])

/*
 * The filter, in order: the architecture check; on x86_64, x32 calls (the
 * same architecture, numbers with __X32_SYSCALL_BIT set) refused as well;
 * one comparison per System V call, each jumping on a match past the rest
 * and past ALLOW to the ENOSYS return.
 */
static int install_filter(void)
{
	struct sock_filter filter[8 + SYSV_CALLS];
	size_t n = 0;
	filter[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						   NATIVE_ARCH, 1, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, KILL);
	filter[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
						   0x40000000, SYSV_CALLS + 1, 0);
#endif
	for (size_t i = 0; i < SYSV_CALLS; i++)
		filter[n++] = (struct sock_filter)BPF_JUMP(
			BPF_JMP | BPF_JEQ | BPF_K, sysv_calls[i],
			SYSV_CALLS - i, 0);
	filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						   SECCOMP_RET_ALLOW);
	filter[n++] = (struct sock_filter)BPF_STMT(
		BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA));

	struct sock_fprog program = { .len = n, .filter = filter };
	/* Lets an unprivileged process install a filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		perror("no_sysv: prctl(PR_SET_NO_NEW_PRIVS)");
		return -1;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == -1) {
		perror("no_sysv: prctl(PR_SET_SECCOMP)");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: no_sysv PROGRAM [ARGS...]\n");
		return 2;
	}
	if (install_filter() == -1)
		return 126;
	execvp(argv[1], argv + 1);
	fprintf(stderr, "no_sysv: %s: %s\n", argv[1], strerror(errno));
	return 127;
}
