/*
 * shm_pipe: a pipe made of a ring buffer in shared memory and three
 * semaphores. FREE counts the ring's free bytes and USED its readable ones,
 * so a write of n bytes waits, in one semop, until n bytes are free; MUTEX
 * guards the ring's bookkeeping. Closing the pipe posts one USED unit with
 * no byte behind it, which a reader finding the ring empty takes as the
 * end. A producer sends a stream of a few hundred KB in writes of varying
 * sizes, a consumer takes it in reads of other sizes, and each prints the
 * byte count and checksum of what it moved.
 */
#include "sysv.h"

#define RING_SIZE 4096
#define TOTAL_BYTES 300000
/* At most this much goes in at once, so the two sides overlap. */
#define LONGEST_PIECE (RING_SIZE / 2)
#define LONGEST_WRITE 3000
#define LONGEST_READ 2500

struct pipe_segment {
	size_t head;   /* where the next byte is written */
	size_t tail;   /* where the next byte is read */
	size_t filled; /* bytes written and not yet read */
	bool closed;
	unsigned char ring[RING_SIZE];
};

enum { FREE, USED, MUTEX };

static int segment_id;
static int semaphores;

static struct pipe_segment *attach(void)
{
	struct pipe_segment *pipe = shmat(segment_id, NULL, 0);
	if (pipe == (void *)-1)
		die("shmat");
	return pipe;
}

static void detach(struct pipe_segment *pipe)
{
	if (shmdt(pipe) == -1)
		die("shmdt");
}

static void lock(void)
{
	sem_add(semaphores, MUTEX, -1, SEM_UNDO);
}

static void unlock(void)
{
	sem_add(semaphores, MUTEX, 1, SEM_UNDO);
}

static void pipe_write(struct pipe_segment *pipe, const unsigned char *bytes,
		       size_t length)
{
	while (length > 0) {
		size_t piece = length < LONGEST_PIECE ? length : LONGEST_PIECE;
		sem_add(semaphores, FREE, -(short)piece, 0);
		lock();
		for (size_t i = 0; i < piece; i++)
			pipe->ring[(pipe->head + i) % RING_SIZE] = bytes[i];
		pipe->head = (pipe->head + piece) % RING_SIZE;
		pipe->filled += piece;
		unlock();
		sem_add(semaphores, USED, (short)piece, 0);
		bytes += piece;
		length -= piece;
	}
}

static void pipe_close(struct pipe_segment *pipe)
{
	lock();
	pipe->closed = true;
	unlock();
	sem_add(semaphores, USED, 1, 0);
}

/* Reads what is there, up to `capacity` bytes; 0 at the end of the stream. */
static size_t pipe_read(struct pipe_segment *pipe, unsigned char *buffer,
			size_t capacity)
{
	/* One byte, or the end. */
	sem_add(semaphores, USED, -1, 0);
	lock();
	size_t length = pipe->filled < capacity ? pipe->filled : capacity;
	if (length == 0 && !pipe->closed)
		fail("a USED unit with neither a byte nor the end behind it");
	for (size_t i = 0; i < length; i++)
		buffer[i] = pipe->ring[(pipe->tail + i) % RING_SIZE];
	pipe->tail = (pipe->tail + length) % RING_SIZE;
	pipe->filled -= length;
	unlock();
	/*
	 * The units of the other bytes taken: the producer posts them after
	 * its unlock, so this may wait for that post, never longer.
	 */
	if (length > 1)
		sem_add(semaphores, USED, -(short)(length - 1), 0);
	if (length > 0)
		sem_add(semaphores, FREE, (short)length, 0);
	return length;
}

static void producer(int unused)
{
	(void)unused;
	struct pipe_segment *pipe = attach();
	unsigned char buffer[LONGEST_WRITE];
	uint64_t checksum = FNV1A_START;
	uint32_t sent = 0;
	int writes = 0;
	while (sent < TOTAL_BYTES) {
		size_t length = 1 + (writes * 7919u) % LONGEST_WRITE;
		if (length > TOTAL_BYTES - sent)
			length = TOTAL_BYTES - sent;
		for (size_t i = 0; i < length; i++)
			buffer[i] = stream_byte(sent + i);
		pipe_write(pipe, buffer, length);
		checksum = fnv1a(checksum, buffer, length);
		sent += length;
		writes++;
	}
	/* Printed before the close, so always before the consumer's line. */
	say("producer: wrote %u bytes in %d writes, checksum %016llx", sent,
	    writes, (unsigned long long)checksum);
	pipe_close(pipe);
	detach(pipe);
}

static void consumer(int unused)
{
	(void)unused;
	struct pipe_segment *pipe = attach();
	unsigned char buffer[LONGEST_READ];
	uint64_t checksum = FNV1A_START;
	size_t received = 0;
	for (unsigned reads = 0;; reads++) {
		size_t length = pipe_read(pipe, buffer,
					  1 + (reads * 104729u) % LONGEST_READ);
		if (length == 0)
			break;
		checksum = fnv1a(checksum, buffer, length);
		received += length;
	}
	say("consumer: read %zu bytes, checksum %016llx", received,
	    (unsigned long long)checksum);
	detach(pipe);
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	segment_id = shmget(IPC_PRIVATE, sizeof(struct pipe_segment),
			    IPC_CREAT | 0600);
	if (segment_id == -1)
		die("shmget");
	own(SHM_SEGMENT, segment_id);
	semaphores = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
	if (semaphores == -1)
		die("semget");
	own(SEM_SET, semaphores);
	unsigned short start[3] = { [FREE] = RING_SIZE, [USED] = 0, [MUTEX] = 1 };
	if (semctl(semaphores, 0, SETALL, (union semun){ .array = start }) == -1)
		die("semctl(SETALL)");

	spawn(producer, 0);
	spawn(consumer, 0);
	wait_children(2);
	return remove_owned(false) ? 0 : 1;
}
