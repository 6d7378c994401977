/*
 * stat_server: a server on a public request queue, answering clients on
 * queues of their own. Each client makes a private reply queue and names it
 * in every request; it sends three requests without waiting (add numbers,
 * uppercase a string, stat), then takes the replies by type, the stat reply
 * first. The server answers requests in the order they were queued, so when
 * it answers a client's stat, that client's first two replies are waiting in
 * its queue, unread, and the server's IPC_STAT of that queue says so.
 *
 * Clients run at once, so none prints: each sends its report lines to the
 * parent on a report queue, typed by client, and the parent prints them
 * client by client. A shutdown request, sent once every client is done,
 * ends the server, which prints how many requests it served.
 */
#include <ctype.h>

#include "sysv.h"

#define CLIENTS 4

enum request_kind { ADD = 1, UPPERCASE, STAT, SHUTDOWN };

struct request {
	long mtype; /* the request_kind */
	int client;
	int reply_queue;
	long numbers[4];
	char text[40];
};

/* A reply to a client (typed by the request it answers), or a report line. */
struct line {
	long mtype;
	char text[160];
};

#define BODY_OF(message) (sizeof(message) - sizeof(long))

static int requests;
static int reports;

__attribute__((format(printf, 3, 4)))
static void send_line(int queue, long type, const char *format, ...)
{
	struct line line = { .mtype = type };
	va_list args;
	va_start(args, format);
	vsnprintf(line.text, sizeof line.text, format, args);
	va_end(args);
	if (msgsnd(queue, &line, BODY_OF(line), 0) == -1)
		die("msgsnd");
}

static void serve(int unused)
{
	(void)unused;
	int served = 0;
	int per_client[CLIENTS] = { 0 };
	for (;;) {
		struct request request;
		if (msgrcv(requests, &request, BODY_OF(request), 0, 0) == -1)
			die("msgrcv");
		if (request.mtype == SHUTDOWN)
			break;
		if (request.client < 0 || request.client >= CLIENTS)
			fail("a request from client %d", request.client);
		served++;
		per_client[request.client]++;
		int reply_to = request.reply_queue;
		switch (request.mtype) {
		case ADD: {
			long sum = 0;
			for (size_t i = 0; i < 4; i++)
				sum += request.numbers[i];
			send_line(reply_to, ADD, "%ld", sum);
			break;
		}
		case UPPERCASE: {
			char upper[sizeof request.text];
			size_t i = 0;
			for (; i + 1 < sizeof upper && request.text[i] != '\0'; i++)
				upper[i] = toupper((unsigned char)request.text[i]);
			upper[i] = '\0';
			send_line(reply_to, UPPERCASE, "%s", upper);
			break;
		}
		case STAT: {
			struct msqid_ds status;
			if (msgctl(reply_to, IPC_STAT, &status) == -1)
				die("msgctl(IPC_STAT)");
			send_line(reply_to, STAT,
				  "%d requests from you, %lu replies waiting for you",
				  per_client[request.client],
				  (unsigned long)status.msg_qnum);
			break;
		}
		default:
			fail("a request of unknown kind %ld", request.mtype);
		}
	}
	say("server: served %d requests, then shut down", served);
}

static void receive_reply(int queue, long kind, struct line *reply)
{
	if (msgrcv(queue, reply, BODY_OF(*reply), kind, 0) == -1)
		die("msgrcv");
}

static void client(int me)
{
	int replies = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (replies == -1)
		die("msgget");
	own(MSG_QUEUE, replies);

	struct request add = {
		.mtype = ADD, .client = me, .reply_queue = replies,
		.numbers = { me + 1, 2 * (me + 1), 3 * (me + 1), 100 },
	};
	struct request uppercase = {
		.mtype = UPPERCASE, .client = me, .reply_queue = replies,
	};
	snprintf(uppercase.text, sizeof uppercase.text, "hello from client %d", me);
	struct request stat = { .mtype = STAT, .client = me, .reply_queue = replies };
	struct request *all[] = { &add, &uppercase, &stat };
	for (size_t i = 0; i < 3; i++)
		if (msgsnd(requests, all[i], BODY_OF(struct request), 0) == -1)
			die("msgsnd");

	struct line sum, upper, status;
	receive_reply(replies, STAT, &status);
	receive_reply(replies, ADD, &sum);
	receive_reply(replies, UPPERCASE, &upper);

	long report = me + 1;
	send_line(reports, report, "client %d: add %ld %ld %ld %ld = %s", me,
		  add.numbers[0], add.numbers[1], add.numbers[2], add.numbers[3],
		  sum.text);
	send_line(reports, report, "client %d: uppercase \"%s\" = \"%s\"", me,
		  uppercase.text, upper.text);
	send_line(reports, report, "client %d: stat = %s", me, status.text);
	if (!remove_owned(false))
		exit(1);
}

/* Prints a client's report lines, which are all queued by now. */
static void print_report(int client)
{
	for (;;) {
		struct line line;
		if (msgrcv(reports, &line, BODY_OF(line), client + 1, IPC_NOWAIT) == -1) {
			if (errno == ENOMSG)
				return;
			die("msgrcv");
		}
		say("%s", line.text);
	}
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	requests = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (requests == -1)
		die("msgget");
	own(MSG_QUEUE, requests);
	reports = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (reports == -1)
		die("msgget");
	own(MSG_QUEUE, reports);

	spawn(serve, 0);
	for (int i = 0; i < CLIENTS; i++)
		spawn(client, i);
	wait_children(CLIENTS);
	for (int i = 0; i < CLIENTS; i++)
		print_report(i);

	struct request shutdown = { .mtype = SHUTDOWN };
	if (msgsnd(requests, &shutdown, BODY_OF(shutdown), 0) == -1)
		die("msgsnd(shutdown)");
	wait_children(1);
	return remove_owned(false) ? 0 : 1;
}
