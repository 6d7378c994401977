/*
 * undo_exec: SEM_UNDO adjustments belong to the process, not to the program
 * image. A child takes a semaphore with SEM_UNDO and execs a new image of
 * this program, which finds the semaphore still taken (exec undoes nothing)
 * and exits; only then is the adjustment applied, and the parent finds the
 * semaphore free again. The new image uses System V IPC itself, so under
 * usysv it carries on the old image's registration.
 */
#include "sysv.h"

#include <stdlib.h>

static void child(int set)
{
	sem_add(set, 0, -1, SEM_UNDO);
	char id[16];
	snprintf(id, sizeof id, "%d", set);
	execl("/proc/self/exe", program_invocation_short_name, "new-image", id,
	      (char *)NULL);
	die("execl");
}

int main(int argc, char **argv)
{
	start_watchdog(WATCHDOG_SECONDS);
	if (argc == 3) {
		int value = semctl(atoi(argv[2]), 0, GETVAL);
		if (value == -1)
			die("semctl(GETVAL) in the new image");
		say("the new image finds the semaphore at %d", value);
		return 0;
	}
	int set = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	if (set == -1)
		die("semget");
	own(SEM_SET, set);
	if (semctl(set, 0, SETVAL, (union semun){ .val = 1 }) == -1)
		die("semctl(SETVAL)");
	spawn(child, set);
	wait_children(1);
	int value = semctl(set, 0, GETVAL);
	if (value == -1)
		die("semctl(GETVAL)");
	say("after the new image exited: %d", value);
	return remove_owned(false) ? 0 : 1;
}
