/*
 * shared_sum: processes adding into one counter in shared memory, each
 * addition a read-modify-write under a binary semaphore taken with SEM_UNDO.
 * Every worker adds 1..TERMS; the last one exits while still holding the
 * lock on its final term, and the kernel's (or usysv's) undo of its
 * adjustment is what frees the lock for the others. The parent prints the
 * sum the counter reached and the sum it should have reached, and the
 * lock's value once everyone is gone.
 */
#include "sysv.h"

#define WORKERS 8
#define TERMS 2000

static int counter_id;
static int lock;

/* Exiting detaches the segment, as it undoes the semaphore adjustments. */
static void worker(int me)
{
	volatile long *counter = shmat(counter_id, NULL, 0);
	if (counter == (void *)-1)
		die("shmat");
	for (long term = 1; term <= TERMS; term++) {
		sem_add(lock, 0, -1, SEM_UNDO);
		long sum = *counter;
		*counter = sum + term;
		if (me == WORKERS - 1 && term == TERMS) {
			/* Exit holding the lock: SEM_UNDO releases it. */
			return;
		}
		sem_add(lock, 0, 1, SEM_UNDO);
	}
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	counter_id = shmget(IPC_PRIVATE, sizeof(long), IPC_CREAT | 0600);
	if (counter_id == -1)
		die("shmget");
	own(SHM_SEGMENT, counter_id);
	lock = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
	if (lock == -1)
		die("semget");
	own(SEM_SET, lock);
	if (semctl(lock, 0, SETVAL, (union semun){ .val = 1 }) == -1)
		die("semctl(SETVAL)");

	for (int i = 0; i < WORKERS; i++)
		spawn(worker, i);
	wait_children(WORKERS);

	/* A new segment is zero-filled; the counter started at 0. */
	long *counter = shmat(counter_id, NULL, SHM_RDONLY);
	if (counter == (void *)-1)
		die("shmat");
	long expected = (long)WORKERS * TERMS * (TERMS + 1) / 2;
	say("%d processes added 1..%d: sum %ld, expected %ld", WORKERS, TERMS,
	    *counter, expected);
	if (shmdt(counter) == -1)
		die("shmdt");
	int value = semctl(lock, 0, GETVAL);
	if (value == -1)
		die("semctl(GETVAL)");
	say("lock value after all exited: %d", value);
	return remove_owned(false) ? 0 : 1;
}
