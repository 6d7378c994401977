/*
 * shm_writer_reader: the classic writer and reader. A writer process moves
 * 1 MiB to a reader process through one 10 KiB shared memory segment, a
 * chunk at a time, taking turns under two semaphores: EMPTY (the writer may
 * fill the segment) and FULL (the reader may empty it). A chunk of length 0
 * ends the transfer. Each side prints how many bytes and chunks it moved
 * and a checksum of them; the two lines must agree.
 */
#include "sysv.h"

#define SEGMENT_SIZE 10240
#define TOTAL_BYTES (1024 * 1024)

struct segment {
	size_t length;
	unsigned char data[SEGMENT_SIZE - sizeof(size_t)];
};
_Static_assert(sizeof(struct segment) == SEGMENT_SIZE, "a 10 KiB segment");

enum { EMPTY, FULL };

static int segment_id;
static int turns;

static struct segment *attach(void)
{
	struct segment *segment = shmat(segment_id, NULL, 0);
	if (segment == (void *)-1)
		die("shmat");
	return segment;
}

static void detach(struct segment *segment)
{
	if (shmdt(segment) == -1)
		die("shmdt");
}

static void writer(int unused)
{
	(void)unused;
	struct segment *segment = attach();
	uint64_t checksum = FNV1A_START;
	uint32_t sent = 0;
	int chunks = 0;
	while (sent < TOTAL_BYTES) {
		size_t length = TOTAL_BYTES - sent;
		if (length > sizeof segment->data)
			length = sizeof segment->data;
		sem_add(turns, EMPTY, -1, 0);
		for (size_t i = 0; i < length; i++)
			segment->data[i] = stream_byte(sent + i);
		segment->length = length;
		checksum = fnv1a(checksum, segment->data, length);
		sem_add(turns, FULL, 1, 0);
		sent += length;
		chunks++;
	}
	/* Printed before the end marker, so always before the reader's line. */
	sem_add(turns, EMPTY, -1, 0);
	say("writer: sent %u bytes in %d chunks, checksum %016llx", sent, chunks,
	    (unsigned long long)checksum);
	segment->length = 0;
	sem_add(turns, FULL, 1, 0);
	detach(segment);
}

static void reader(int unused)
{
	(void)unused;
	struct segment *segment = attach();
	uint64_t checksum = FNV1A_START;
	size_t received = 0;
	int chunks = 0;
	for (;;) {
		sem_add(turns, FULL, -1, 0);
		size_t length = segment->length;
		if (length == 0)
			break;
		if (length > sizeof segment->data)
			fail("a chunk of %zu bytes in a %zu-byte segment", length,
			     sizeof segment->data);
		checksum = fnv1a(checksum, segment->data, length);
		received += length;
		chunks++;
		sem_add(turns, EMPTY, 1, 0);
	}
	say("reader: received %zu bytes in %d chunks, checksum %016llx", received,
	    chunks, (unsigned long long)checksum);
	detach(segment);
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	segment_id = shmget(IPC_PRIVATE, SEGMENT_SIZE, IPC_CREAT | 0600);
	if (segment_id == -1)
		die("shmget");
	own(SHM_SEGMENT, segment_id);
	turns = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
	if (turns == -1)
		die("semget");
	own(SEM_SET, turns);
	unsigned short start[2] = { [EMPTY] = 1, [FULL] = 0 };
	if (semctl(turns, 0, SETALL, (union semun){ .array = start }) == -1)
		die("semctl(SETALL)");

	spawn(writer, 0);
	spawn(reader, 0);
	wait_children(2);
	return remove_owned(false) ? 0 : 1;
}
