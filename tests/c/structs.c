/*
 * structs: every control command's structure, field by field.
 *
 * Creates one object of each kind and prints what IPC_STAT, IPC_SET,
 * SEM_STAT/MSG_STAT/SHM_STAT, IPC_INFO, SEM_INFO/MSG_INFO/SHM_INFO and the
 * semaphore commands report, in words that are the same on every run and
 * every implementation (ids, pids and times are printed as their relation
 * to what the program knows), and the errno of the calls made wrongly. Run
 * on the kernel and on usysv, the two outputs must be identical: each field
 * read at the offset libc's header gives it.
 */
#include "sysv.h"

#include <time.h>

static pid_t me;
static time_t start;

/* The newest object this process owns was removed on purpose. */
static void disown(void)
{
	owned_count--;
}

/* A time as this program can know it: 0, or "now" (since it started). */
static const char *when(time_t t)
{
	if (t == 0)
		return "0";
	return t >= start && t <= time(NULL) ? "now" : "wrong";
}

static void print_perm(const char *kind, const struct ipc_perm *p)
{
	printf("%s perm: key %d, uid %s, gid %s, cuid %s, cgid %s, mode %o\n", kind,
           (int)p->__key, p->uid == geteuid() ? "me" : "other",
           p->gid == getegid() ? "mine" : "other",
           p->cuid == geteuid() ? "me" : "other",
           p->cgid == getegid() ? "mine" : "other", (unsigned)p->mode);
}

/* Runs a call that must fail, printing its errno's name. */
#define FAILS(what, call)                                                      \
	do {                                                                       \
		errno = 0;                                                             \
		long rc_ = (long)(call);                                               \
		printf("%s: %ld %s\n", what, rc_, rc_ == -1 ? strerrorname_np(errno) : "-"); \
	} while (0)

static void semaphores(void)
{
	int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
	if (id < 0)
		die("semget");
	own(SEM_SET, id);
	union semun arg;
	struct semid_ds ds;
	arg.buf = &ds;
	if (semctl(id, 0, IPC_STAT, arg) < 0)
		die("IPC_STAT");
	print_perm("sem", &ds.sem_perm);
	printf("sem: nsems %lu, otime %s, ctime %s\n", (unsigned long)ds.sem_nsems,
           when(ds.sem_otime), when(ds.sem_ctime));

	unsigned short set[3] = {4, 5, 6}, got[3] = {0, 0, 0};
	arg.array = set;
	if (semctl(id, 0, SETALL, arg) < 0)
		die("SETALL");
	struct sembuf op = {1, -2, 0};
	if (semop(id, &op, 1) < 0)
		die("semop");
	arg.array = got;
	if (semctl(id, 0, GETALL, arg) < 0)
		die("GETALL");
	printf("sem: values %u %u %u, GETVAL(2) %d, GETPID %s, GETNCNT %d, GETZCNT %d\n",
           got[0], got[1], got[2], semctl(id, 2, GETVAL),
           semctl(id, 1, GETPID) == me ? "me" : "other", semctl(id, 1, GETNCNT),
           semctl(id, 1, GETZCNT));
	arg.val = 9;
	if (semctl(id, 0, SETVAL, arg) < 0)
		die("SETVAL");
	printf("sem: after SETVAL(0, 9) GETVAL(0) %d\n", semctl(id, 0, GETVAL));

	arg.buf = &ds;
	ds.sem_perm.mode = 0640;
	if (semctl(id, 0, IPC_SET, arg) < 0)
		die("IPC_SET");
	memset(&ds, 0xa5, sizeof ds);
	int found = semctl(id % 32768, 0, SEM_STAT, arg);
	printf("sem: SEM_STAT gives %s, mode %o, nsems %lu, otime %s\n",
           found == id ? "the id" : "another id", (unsigned)ds.sem_perm.mode,
           (unsigned long)ds.sem_nsems, when(ds.sem_otime));

	struct seminfo info;
	memset(&info, 0xa5, sizeof info);
	arg.__buf = &info;
	int index = semctl(0, 0, IPC_INFO, arg);
	printf("seminfo: index %s, semvmx %d, semusz %d, semaem %d, semmsl>0 %d\n",
           index >= 0 ? "ok" : "-1", info.semvmx, info.semusz, info.semaem,
           info.semmsl > 0);
	memset(&info, 0xa5, sizeof info);
	index = semctl(0, 0, SEM_INFO, arg);
	printf("SEM_INFO: index %s, sets>=1 %d, sems>=3 %d\n", index >= 0 ? "ok" : "-1",
           info.semusz >= 1, info.semaem >= 3);

	arg.buf = NULL;
	FAILS("sem IPC_STAT null", semctl(id, 0, IPC_STAT, arg));
	FAILS("sem IPC_SET null", semctl(id, 0, IPC_SET, arg));
	arg.array = NULL;
	FAILS("sem GETALL null", semctl(id, 0, GETALL, arg));
	FAILS("sem SETALL null", semctl(id, 0, SETALL, arg));
	FAILS("sem bad command", semctl(id, 0, 999));
	FAILS("sem negative id", semctl(-1, 0, GETVAL));
	FAILS("sem GETVAL past the end", semctl(id, 3, GETVAL));
	FAILS("semop null", semop(id, NULL, 1));
	FAILS("semop none", semop(id, &op, 0));
	arg.val = 40000;
	FAILS("sem SETVAL too big", semctl(id, 0, SETVAL, arg));
	if (semctl(id, 0, IPC_RMID) < 0)
		die("sem IPC_RMID");
	disown();
	FAILS("sem after IPC_RMID", semctl(id, 0, GETVAL));
}

static void queues(void)
{
	int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
	if (id < 0)
		die("msgget");
	own(MSG_QUEUE, id);
	struct msqid_ds ds;
	if (msgctl(id, IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	print_perm("msg", &ds.msg_perm);
	printf("msg: qnum %lu, cbytes %lu, qbytes %lu, lspid %d, lrpid %d, stime %s, rtime %s, ctime %s\n",
           (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
           (unsigned long)ds.msg_qbytes, ds.msg_lspid, ds.msg_lrpid,
           when(ds.msg_stime), when(ds.msg_rtime), when(ds.msg_ctime));

	struct {
		long mtype;
		char mtext[32];
	} msg = {3, "ten bytes!"}, got;
	if (msgsnd(id, &msg, 10, 0) < 0 || msgsnd(id, &msg, 5, 0) < 0)
		die("msgsnd");
	ssize_t n = msgrcv(id, &got, sizeof got.mtext, 0, 0);
	printf("msg: received %zd bytes of type %ld: %.10s\n", n, got.mtype, got.mtext);
	if (msgctl(id, IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	printf("msg: qnum %lu, cbytes %lu, lspid %s, lrpid %s, stime %s, rtime %s\n",
           (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes,
           ds.msg_lspid == me ? "me" : "other", ds.msg_lrpid == me ? "me" : "other",
           when(ds.msg_stime), when(ds.msg_rtime));

	ds.msg_perm.mode = 0604;
	ds.msg_qbytes = 1000;
	if (msgctl(id, IPC_SET, &ds) < 0)
		die("IPC_SET");
	memset(&ds, 0xa5, sizeof ds);
	int found = msgctl(id % 32768, MSG_STAT, &ds);
	printf("msg: MSG_STAT gives %s, mode %o, qbytes %lu, qnum %lu\n",
           found == id ? "the id" : "another id", (unsigned)ds.msg_perm.mode,
           (unsigned long)ds.msg_qbytes, (unsigned long)ds.msg_qnum);

	struct msginfo info;
	memset(&info, 0xa5, sizeof info);
	int index = msgctl(0, IPC_INFO, (struct msqid_ds *)&info);
	printf("msginfo: index %s, msgmax %d, msgmnb %d, msgssz %d, msgmni>0 %d\n",
           index >= 0 ? "ok" : "-1", info.msgmax, info.msgmnb, info.msgssz,
           info.msgmni > 0);
	memset(&info, 0xa5, sizeof info);
	index = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
	printf("MSG_INFO: index %s, queues>=1 %d, messages>=1 %d, bytes>=5 %d\n",
           index >= 0 ? "ok" : "-1", info.msgpool >= 1, info.msgmap >= 1,
           info.msgtql >= 5);

	FAILS("msg IPC_STAT null", msgctl(id, IPC_STAT, NULL));
	FAILS("msg IPC_SET null", msgctl(id, IPC_SET, NULL));
	FAILS("msg bad command", msgctl(id, 999, &ds));
	FAILS("msgsnd null", msgsnd(id, NULL, 1, 0));
	msg.mtype = 0;
	FAILS("msgsnd type 0", msgsnd(id, &msg, 1, 0));
	FAILS("msgrcv too small", msgrcv(id, &got, 2, 0, IPC_NOWAIT));
	FAILS("msgrcv a type not queued", msgrcv(id, &got, sizeof got.mtext, 4, IPC_NOWAIT));
	if (msgctl(id, IPC_RMID, NULL) < 0)
		die("msg IPC_RMID");
	disown();
	FAILS("msg after IPC_RMID", msgctl(id, IPC_STAT, &ds));
}

static void segments(void)
{
	int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
	if (id < 0)
		die("shmget");
	own(SHM_SEGMENT, id);
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	print_perm("shm", &ds.shm_perm);
	printf("shm: segsz %zu, nattch %lu, cpid %s, lpid %d, atime %s, dtime %s, ctime %s\n",
           ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_cpid == me ? "me" : "other",
           ds.shm_lpid, when(ds.shm_atime), when(ds.shm_dtime), when(ds.shm_ctime));

	char *at = shmat(id, NULL, 0);
	if (at == (void *)-1)
		die("shmat");
	strcpy(at, "shared");
	if (shmctl(id, IPC_RMID, NULL) < 0)
		die("IPC_RMID");
	disown();
	memset(&ds, 0xa5, sizeof ds);
	if (shmctl(id, IPC_STAT, &ds) < 0)
		die("IPC_STAT");
	print_perm("shm removed", &ds.shm_perm);
	printf("shm: nattch %lu, lpid %s, atime %s, dtime %s, holds \"%s\"\n",
           (unsigned long)ds.shm_nattch, ds.shm_lpid == me ? "me" : "other",
           when(ds.shm_atime), when(ds.shm_dtime), at);

	ds.shm_perm.mode = 0640;
	if (shmctl(id, IPC_SET, &ds) < 0)
		die("IPC_SET");
	memset(&ds, 0xa5, sizeof ds);
	int found = shmctl(id % 32768, SHM_STAT, &ds);
	printf("shm: SHM_STAT gives %s, mode %o, segsz %zu\n",
           found == id ? "the id" : "another id", (unsigned)ds.shm_perm.mode,
           ds.shm_segsz);

	struct shminfo info;
	memset(&info, 0xa5, sizeof info);
	int index = shmctl(0, IPC_INFO, (struct shmid_ds *)&info);
	printf("shminfo: index %s, shmmin %lu, shmmni>0 %d, shmseg==shmmni %d, shmall>0 %d\n",
           index >= 0 ? "ok" : "-1", (unsigned long)info.shmmin, info.shmmni > 0,
           info.shmseg == info.shmmni, info.shmall > 0);
	struct shm_info usage;
	memset(&usage, 0xa5, sizeof usage);
	index = shmctl(0, SHM_INFO, (struct shmid_ds *)&usage);
	printf("SHM_INFO: index %s, segments>=1 %d, pages>=3 %d, swapped %lu\n",
           index >= 0 ? "ok" : "-1", usage.used_ids >= 1, usage.shm_tot >= 3,
           (unsigned long)usage.shm_swp);

	FAILS("shm IPC_STAT null", shmctl(id, IPC_STAT, NULL));
	FAILS("shm IPC_SET null", shmctl(id, IPC_SET, NULL));
	FAILS("shm bad command", shmctl(id, 999, &ds));
	FAILS("shmdt not attached", shmdt(at + 1));
	if (shmdt(at) < 0)
		die("shmdt");
	FAILS("shm after the last detach", shmctl(id, IPC_STAT, &ds));
	FAILS("shmat removed", (long)shmat(id, NULL, 0));
}

int main(void)
{
	start_watchdog(WATCHDOG_SECONDS);
	me = getpid();
	start = time(NULL);
	semaphores();
	queues();
	segments();
	return 0;
}
