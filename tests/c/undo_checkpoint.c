/*
 * undo_checkpoint: checkpoint and restart of a SEM_UNDO list, through
 * usysv's C API (the kernel has no such calls). A worker takes a semaphore
 * with SEM_UNDO, exports its undo list with USYSV_UNDO_HOLD, hands the text
 * to the parent and waits; the parent kills it. Held, the adjustment is kept
 * instead of applied: the semaphore stays taken. A restarted process imports
 * the list, finds the semaphore still taken, and gives it back when it
 * exits; the list is imported only once.
 */
#include "sysv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef USYSV_API
#error "undo_checkpoint needs usysv's C API: build it with -DUSYSV_API"
#endif

static int channel[2];
static char list[4096];

static void worker(int set)
{
	sem_add(set, 0, -1, SEM_UNDO);
	ssize_t length = usysv_undo_export(0, USYSV_UNDO_HOLD, list, sizeof list);
	if (length < 0)
		die("usysv_undo_export");
	if (length >= (ssize_t)sizeof list)
		fail("an undo list of %zd bytes", length);
	if (write(channel[1], list, length + 1) != length + 1)
		die("write");
	pause();
}

static void restarted(int set)
{
	if (usysv_undo_import(list) == -1)
		die("usysv_undo_import");
	int value = semctl(set, 0, GETVAL);
	if (value == -1)
		die("semctl(GETVAL) in the restarted process");
	say("the restarted process finds the semaphore at %d", value);
	say("importing again: %s",
	    usysv_undo_import(list) == -1 ? strerrorname_np(errno) : "done");
}

static int value_of(int set)
{
	int value = semctl(set, 0, GETVAL);
	if (value == -1)
		die("semctl(GETVAL)");
	return value;
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	int set = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	if (set == -1)
		die("semget");
	own(SEM_SET, set);
	if (semctl(set, 0, SETVAL, (union semun){ .val = 1 }) == -1)
		die("semctl(SETVAL)");
	if (pipe(channel) == -1)
		die("pipe");
	pid_t pid = spawn(worker, set);
	size_t got = 0;
	do {
		ssize_t n = read(channel[0], list + got, sizeof list - got);
		if (n <= 0)
			die("read");
		got += n;
	} while (list[got - 1] != '\0');
	char expected[64];
	snprintf(expected, sizeof expected, "\nset %d 0:+1\n", set);
	say("the list holds the worker's +1: %s",
	    strstr(list, expected) ? "yes" : "no");
	if (kill(pid, SIGKILL) == -1 || waitpid(pid, NULL, 0) == -1)
		die("kill the worker");
	say("after the kill: %d", value_of(set));

	say("garbage: %s", usysv_undo_import("usysv-undo 9\n") == -1 ?
				   strerrorname_np(errno) : "imported");
	say("unknown flags: %s", usysv_undo_export(0, 2, NULL, 0) == -1 ?
					 strerrorname_np(errno) : "exported");
	say("the dead worker's list is still readable: %s",
	    usysv_undo_export(pid, 0, NULL, 0) > 0 ? "yes" : "no");

	spawn(restarted, set);
	wait_children(1);
	say("after the restarted process exited: %d", value_of(set));
	return remove_owned(false) ? 0 : 1;
}
