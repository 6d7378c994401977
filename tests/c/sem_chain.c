/*
 * sem_chain: processes passing a token round a ring of semaphores. Process
 * i waits on semaphore i, says its turn, and posts semaphore i+1; the last
 * posts semaphore 0 to start the next round. The semaphores alone fix the
 * order in which the lines appear. Each wait is a semtimedop with a timeout,
 * so a broken chain fails with EAGAIN instead of hanging.
 */
#include <time.h>

#include "sysv.h"

#define PROCESSES 5
#define ROUNDS 4

static int ring;

static void link_in_chain(int me)
{
	struct timespec patience = { .tv_sec = 5 };
	for (int round = 1; round <= ROUNDS; round++) {
		struct sembuf wait_turn = { .sem_num = me, .sem_op = -1 };
		if (semtimedop(ring, &wait_turn, 1, &patience) == -1)
			die("semtimedop");
		say("round %d: process %d", round, me);
		sem_add(ring, (me + 1) % PROCESSES, 1, 0);
	}
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	ring = semget(IPC_PRIVATE, PROCESSES, IPC_CREAT | 0600);
	if (ring == -1)
		die("semget");
	own(SEM_SET, ring);
	/* The token starts at process 0. */
	if (semctl(ring, 0, SETVAL, (union semun){ .val = 1 }) == -1)
		die("semctl(SETVAL)");

	for (int i = 0; i < PROCESSES; i++)
		spawn(link_in_chain, i);
	wait_children(PROCESSES);

	/* The last post of the last round left the token back at process 0. */
	unsigned short values[PROCESSES];
	if (semctl(ring, 0, GETALL, (union semun){ .array = values }) == -1)
		die("semctl(GETALL)");
	char line[8 * PROCESSES] = "";
	for (int i = 0; i < PROCESSES; i++)
		snprintf(line + strlen(line), sizeof line - strlen(line), " %u",
			 values[i]);
	say("semaphores after the chain:%s", line);
	return remove_owned(false) ? 0 : 1;
}
