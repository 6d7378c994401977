/*
 * The variadic half of semctl(2). Rust cannot define a C variadic function
 * on stable, so the exported usysv_semctl and semctl jump here (see
 * trampoline.rs), and this reads the fourth argument, a union semun, only
 * for the commands that take one, as libc's semctl does: a caller that
 * passes no fourth argument to the others is not read past.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <sys/ipc.h>
#include <sys/sem.h>

/* The caller defines it (SUSv4 leaves it to the program). */
union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *__buf;
};

int usysv_semctl_args(int semid, int semnum, int cmd, int val, void *ptr);

int usysv_semctl_variadic(int semid, int semnum, int cmd, ...)
{
    union semun arg;
    va_list ap;

    switch (cmd) {
    case SETVAL:
        va_start(ap, cmd);
        arg = va_arg(ap, union semun);
        va_end(ap);
        return usysv_semctl_args(semid, semnum, cmd, arg.val, NULL);
    case IPC_STAT:
    case IPC_SET:
    case IPC_INFO:
    case SEM_INFO:
    case SEM_STAT:
    case SEM_STAT_ANY:
    case GETALL:
    case SETALL:
        va_start(ap, cmd);
        arg = va_arg(ap, union semun);
        va_end(ap);
        return usysv_semctl_args(semid, semnum, cmd, 0, arg.buf);
    default:
        return usysv_semctl_args(semid, semnum, cmd, 0, NULL);
    }
}
