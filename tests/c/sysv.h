/*
 * sysv.h: what every program in tests/c includes instead of the System V
 * headers, so that one source runs on any System V implementation.
 *
 * Built plainly, a program calls the C library's semget, msgsnd, shmat, ...:
 * the kernel's IPC, or whatever an LD_PRELOAD library puts in front of it.
 * Built with -DUSYSV_API, the same calls are renamed to usysv's C API
 * (usysv_semget, ...), declared in usysv.h with libc's signatures.
 *
 * The second half holds the few helpers every program shares: failing with
 * a message, a watchdog, child processes that die with their parent, the
 * IPC objects a process made (removed on failure), whole-line output, and
 * the checksum the data-moving programs print.
 */
#ifndef SYSV_H
#define SYSV_H

#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#ifdef USYSV_API
#include "usysv.h"

#define semget usysv_semget
#define semop usysv_semop
#define semtimedop usysv_semtimedop
#define semctl usysv_semctl
#define msgget usysv_msgget
#define msgsnd usysv_msgsnd
#define msgrcv usysv_msgrcv
#define msgctl usysv_msgctl
#define shmget usysv_shmget
#define shmat usysv_shmat
#define shmdt usysv_shmdt
#define shmctl usysv_shmctl
#endif

/*
 * semctl's fourth argument. glibc leaves it to the program and says so with
 * _SEM_SEMUN_UNDEFINED; a usysv.h that declares its own defines USYSV_SEMUN.
 */
#if defined(_SEM_SEMUN_UNDEFINED) && !defined(USYSV_SEMUN)
union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
	struct seminfo *__buf;
};
#endif

/* ---- Helpers the programs share ---------------------------------------- */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Every process ends itself after this long: a hang fails, it never blocks.
 * A child's watchdog fires a little later than the parent's, so that in a
 * hang the parent, which owns the objects, is the one that ends it and says
 * so.
 */
#define WATCHDOG_SECONDS 20
#define CHILD_WATCHDOG_SECONDS (WATCHDOG_SECONDS + 5)

enum ipc_kind { SEM_SET, MSG_QUEUE, SHM_SEGMENT };

/*
 * The IPC objects this process made and has not yet removed. A child starts
 * with none: what its parent made is the parent's to remove.
 */
static struct {
	enum ipc_kind kind;
	int id;
} owned[8];
static int owned_count;

/* Removes what this process owns, newest first; quietly when failing. */
static inline bool remove_owned(bool quiet)
{
	bool ok = true;
	while (owned_count > 0) {
		owned_count--;
		int id = owned[owned_count].id;
		int ret = 0;
		const char *call = "";
		switch (owned[owned_count].kind) {
		case SEM_SET:
			ret = semctl(id, 0, IPC_RMID);
			call = "semctl(IPC_RMID)";
			break;
		case MSG_QUEUE:
			ret = msgctl(id, IPC_RMID, NULL);
			call = "msgctl(IPC_RMID)";
			break;
		case SHM_SEGMENT:
			ret = shmctl(id, IPC_RMID, NULL);
			call = "shmctl(IPC_RMID)";
			break;
		}
		if (ret == -1 && !quiet) {
			fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name,
				call, strerror(errno));
			ok = false;
		}
	}
	return ok;
}

/*
 * Ends the process with status 1 after saying why on stderr (in one write,
 * so that messages from several processes stay whole), first removing the
 * objects it owns: processes blocked on them then fail too, at once.
 */
__attribute__((format(printf, 1, 2), noreturn))
static inline void fail(const char *format, ...)
{
	char message[512];
	int length = snprintf(message, sizeof message, "%s: ",
			      program_invocation_short_name);
	va_list args;
	va_start(args, format);
	vsnprintf(message + length, sizeof message - length - 1, format, args);
	va_end(args);
	strcat(message, "\n");
	ssize_t ignored = write(STDERR_FILENO, message, strlen(message));
	(void)ignored; /* failing already, with no one else to tell */
	remove_owned(true);
	_exit(1);
}

/* fail() for a call that set errno. */
__attribute__((noreturn))
static inline void die(const char *call)
{
	fail("%s: %s", call, strerror(errno));
}

/* Records an object this process made (its creation having succeeded). */
static inline int own(enum ipc_kind kind, int id)
{
	if (owned_count == (int)(sizeof owned / sizeof owned[0])) {
		errno = ENOSPC;
		die("own");
	}
	owned[owned_count].kind = kind;
	owned[owned_count].id = id;
	owned_count++;
	return id;
}

/*
 * The watchdog's end. A process stuck past its time is broken anyway, so
 * removing its objects from a signal handler is worth the risk; the second
 * alarm, with the default action, ends it if the removal hangs too.
 */
static void watchdog_expired(int signal)
{
	(void)signal;
	static const char message[] = ": watchdog: out of time, a hang\n";
	/* If stderr is gone there is no one left to tell. */
	ssize_t ignored = write(STDERR_FILENO, program_invocation_short_name,
				strlen(program_invocation_short_name));
	ignored = write(STDERR_FILENO, message, sizeof message - 1);
	(void)ignored;
	struct sigaction fallback = { .sa_handler = SIG_DFL };
	sigaction(SIGALRM, &fallback, NULL);
	alarm(2);
	remove_owned(true);
	_exit(1);
}

static inline void start_watchdog(unsigned seconds)
{
	struct sigaction action = { .sa_handler = watchdog_expired };
	if (sigaction(SIGALRM, &action, NULL) == -1)
		die("sigaction");
	alarm(seconds);
}

/*
 * Forks a child that runs body(arg) and exits 0 (body ends the child itself
 * on failure). The child owns no objects, dies with its parent, and has a
 * watchdog of its own: an alarm does not survive fork.
 */
static inline pid_t spawn(void (*body)(int), int arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == -1)
		die("fork");
	if (pid > 0)
		return pid;
	owned_count = 0;
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1)
		die("prctl(PR_SET_PDEATHSIG)");
	if (getppid() != parent)
		fail("the parent died before its child started");
	start_watchdog(CHILD_WATCHDOG_SECONDS);
	body(arg);
	_exit(0);
}

/*
 * Waits for `count` children, in whatever order they end, and fails at the
 * first that did not exit 0: the objects removed then end the others.
 */
static inline void wait_children(int count)
{
	for (int i = 0; i < count; i++) {
		int status;
		if (waitpid(-1, &status, 0) == -1)
			die("waitpid");
		if (WIFSIGNALED(status))
			fail("a child was killed by signal %d (%s)",
			     WTERMSIG(status), strsignal(WTERMSIG(status)));
		if (WEXITSTATUS(status) != 0)
			fail("a child exited with status %d",
			     WEXITSTATUS(status));
	}
}

/*
 * Prints one line with a single write(2): lines from several processes never
 * interleave, and no stdio buffer is copied into a child by fork.
 */
__attribute__((format(printf, 1, 2)))
static inline void say(const char *format, ...)
{
	char line[512];
	va_list args;
	va_start(args, format);
	int length = vsnprintf(line, sizeof line - 1, format, args);
	va_end(args);
	if (length < 0 || length >= (int)sizeof line - 1)
		fail("say: a line longer than %zu bytes", sizeof line - 2);
	line[length++] = '\n';
	if (write(STDOUT_FILENO, line, length) != length)
		die("write");
}

/* Adds `delta` to semaphore `num` of `set`, as one semop(2). */
static inline void sem_add(int set, unsigned short num, short delta, short flags)
{
	struct sembuf op = { .sem_num = num, .sem_op = delta, .sem_flg = flags };
	if (semop(set, &op, 1) == -1)
		die("semop");
}

/* The byte at `offset` of the stream the data-moving programs send. */
static inline unsigned char stream_byte(uint32_t offset)
{
	return (unsigned char)((offset * 2654435761u) >> 24);
}

#define FNV1A_START 0xcbf29ce484222325u

/* Folds `length` bytes into a 64-bit FNV-1a hash. */
static inline uint64_t fnv1a(uint64_t hash, const unsigned char *bytes, size_t length)
{
	for (size_t i = 0; i < length; i++) {
		hash ^= bytes[i];
		hash *= 0x100000001b3u;
	}
	return hash;
}

#endif
