/*
 * msg_logger: one message queue carrying log records, the message type being
 * the severity (1 = error, the most severe, to 4 = debug). Several producer
 * processes log concurrently; one logger process takes records with a
 * negative msgtyp, -STOP, which always takes the most severe record queued.
 *
 * Before anyone runs, the parent queues a startup backlog of mixed
 * severities: those records are all present together, so the logger must
 * take them most severe first, whatever the producers do meanwhile. The
 * logger checks every record's text and that each producer's records of one
 * severity arrive in the order sent, then prints counts per severity and per
 * producer. The stop record (the least severe type) comes out only once
 * nothing else is queued, and the parent sends it only after every producer
 * is done; MSG_EXCEPT then confirms nothing but stop records could be left,
 * and IPC_STAT that the queue is empty.
 */
#include "sysv.h"

#define PRODUCERS 3
/* The parent's startup backlog counts as one more producer, the last. */
#define STARTUP PRODUCERS

enum severity { ERROR = 1, WARNING, INFO, DEBUG, STOP };

static const char *const severity_names[] = {
	[ERROR] = "error", [WARNING] = "warning", [INFO] = "info", [DEBUG] = "debug",
};

static const enum severity startup_backlog[] = {
	INFO, DEBUG, ERROR, WARNING, DEBUG, ERROR, INFO,
};
#define STARTUP_RECORDS (int)(sizeof startup_backlog / sizeof startup_backlog[0])

struct record {
	long mtype;
	int producer;
	int number;   /* the producer's count of records before this one */
	int sequence; /* the same, counting only records of this severity */
	char text[36];
};
#define RECORD_BODY (sizeof(struct record) - sizeof(long))

static int queue;

static int records_of(int producer)
{
	return producer == STARTUP ? STARTUP_RECORDS : 100 + 20 * producer;
}

static enum severity severity_of(int producer, int number)
{
	if (producer == STARTUP)
		return startup_backlog[number];
	if (number % 16 == 0)
		return ERROR;
	if (number % 4 == 0)
		return WARNING;
	return number % 2 == 0 ? INFO : DEBUG;
}

static void describe(char *text, size_t size, int producer, int number)
{
	snprintf(text, size, "producer %d record %d", producer, number);
}

static void send_records(int producer)
{
	int sequences[STOP] = { 0 };
	for (int number = 0; number < records_of(producer); number++) {
		struct record record = {
			.mtype = severity_of(producer, number),
			.producer = producer,
			.number = number,
			.sequence = sequences[severity_of(producer, number)]++,
		};
		describe(record.text, sizeof record.text, producer, number);
		if (msgsnd(queue, &record, RECORD_BODY, 0) == -1)
			die("msgsnd");
	}
}

static void logger(int unused)
{
	(void)unused;
	int per_severity[STOP] = { 0 };
	int per_producer[PRODUCERS + 1] = { 0 };
	int out_of_order[PRODUCERS + 1] = { 0 };
	int next_sequence[PRODUCERS + 1][STOP] = { { 0 } };
	char startup_order[16 * STARTUP_RECORDS] = "";
	int total = 0;
	for (;;) {
		struct record record;
		ssize_t length = msgrcv(queue, &record, RECORD_BODY, -STOP, 0);
		if (length == -1)
			die("msgrcv");
		if (length != (ssize_t)RECORD_BODY)
			fail("a record of %zd bytes", length);
		if (record.mtype == STOP)
			break;
		int producer = record.producer;
		if (record.mtype < ERROR || record.mtype > DEBUG || producer < 0 ||
		    producer > PRODUCERS || record.number < 0 ||
		    record.number >= records_of(producer) ||
		    record.mtype != severity_of(producer, record.number))
			fail("a record that was never sent: type %ld, producer %d, "
			     "number %d", record.mtype, producer, record.number);
		char expected[sizeof record.text];
		describe(expected, sizeof expected, producer, record.number);
		if (strcmp(record.text, expected) != 0)
			fail("record text \"%.*s\", sent as \"%s\"",
			     (int)sizeof record.text, record.text, expected);
		if (record.sequence != next_sequence[producer][record.mtype])
			out_of_order[producer]++;
		next_sequence[producer][record.mtype] = record.sequence + 1;
		per_severity[record.mtype]++;
		per_producer[producer]++;
		total++;
		if (producer == STARTUP) {
			strcat(startup_order, " ");
			strcat(startup_order, severity_names[record.mtype]);
		}
	}

	struct record leftover;
	if (msgrcv(queue, &leftover, RECORD_BODY, STOP, MSG_EXCEPT | IPC_NOWAIT) != -1)
		fail("a record of type %ld after the stop", leftover.mtype);
	if (errno != ENOMSG)
		die("msgrcv(MSG_EXCEPT)");

	say("startup backlog as received:%s", startup_order);
	for (int severity = ERROR; severity <= DEBUG; severity++)
		say("%s: %d records", severity_names[severity], per_severity[severity]);
	for (int producer = 0; producer <= PRODUCERS; producer++) {
		char name[16] = "startup";
		if (producer != STARTUP)
			snprintf(name, sizeof name, "producer %d", producer);
		say("%s: %d records, %d out of order", name, per_producer[producer],
		    out_of_order[producer]);
	}
	say("stop after %d records", total);
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	queue = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (queue == -1)
		die("msgget");
	own(MSG_QUEUE, queue);

	send_records(STARTUP);
	spawn(logger, 0);
	for (int producer = 0; producer < PRODUCERS; producer++)
		spawn(send_records, producer);
	wait_children(PRODUCERS);

	struct record stop = { .mtype = STOP };
	if (msgsnd(queue, &stop, RECORD_BODY, 0) == -1)
		die("msgsnd(stop)");
	wait_children(1);

	struct msqid_ds status;
	if (msgctl(queue, IPC_STAT, &status) == -1)
		die("msgctl(IPC_STAT)");
	say("queue after the logger: %lu messages", (unsigned long)status.msg_qnum);
	return remove_owned(false) ? 0 : 1;
}
