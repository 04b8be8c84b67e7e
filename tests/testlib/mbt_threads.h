/*
 * mbt_threads.h - the process's threads, seen from a test: whether the
 * others sleep, their names, and whether a signal sent to the process
 * reaches the wait of the program's thread that blocks it.  The threads a
 * library starts (mb_thread_start) are named and block every signal; one
 * with the signal open would take it instead, and the default action of
 * SIGUSR1 ends the process.
 */
#ifndef MBT_THREADS_H
#define MBT_THREADS_H

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MBT_SIGNAL_WAIT_S 5
#define MBT_ASLEEP_POLLS 500 /* of 10 ms */

/* Calls each(text, arg) with the contents of /proc/self/task/TID/FILE
 * (at most 511 bytes) of every thread but the caller, until it returns 0;
 * a thread that ended meanwhile is skipped.  Returns 0 if each stopped. */
static inline int mbt_each_other_thread(const char *file, int (*each)(const char *, void *),
					void *arg)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	long self = syscall(SYS_gettid);
	int go_on = 1;

	if (d == NULL)
		return 1;
	while (go_on && (e = readdir(d)) != NULL) {
		char path[32 + sizeof e->d_name], buf[512];
		FILE *f;
		size_t n;

		if (e->d_name[0] == '.' || atol(e->d_name) == self)
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/%s", e->d_name, file);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		go_on = each(buf, arg);
	}
	closedir(d);
	return go_on;
}

/* A stat line's state (after the ")" of the name) is S or D. */
static inline int mbt_asleep(const char *stat, void *arg)
{
	const char *st = strrchr(stat, ')');

	(void)arg;
	return st != NULL && st[1] == ' ' && (st[2] == 'S' || st[2] == 'D');
}

/* 1 when every thread of the process but the caller sleeps (state S or
 * D in its stat).  A thread glibc has just made starts with every signal
 * blocked and sets its own mask before it runs its start routine: one
 * that sleeps (in poll, sem_wait, accept) has its mask. */
static inline int mbt_others_asleep(void)
{
	return mbt_each_other_thread("stat", mbt_asleep, NULL);
}

#define MBT_COMM_MAX 16

struct mbt_names {
	char (*names)[MBT_COMM_MAX];
	int n, max;
};

static inline int mbt_add_name(const char *comm, void *arg)
{
	struct mbt_names *nm = arg;

	snprintf(nm->names[nm->n], MBT_COMM_MAX, "%.*s", (int)strcspn(comm, "\n"), comm);
	return ++nm->n < nm->max;
}

/* The names (comm) of the process's threads other than the caller, at
 * most max of them, in the order of /proc/self/task.  Returns how many. */
static inline int mbt_thread_names(char (*names)[MBT_COMM_MAX], int max)
{
	struct mbt_names nm = { names, 0, max };

	if (max > 0)
		mbt_each_other_thread("comm", mbt_add_name, &nm);
	return nm.n;
}

/* 1 if one of the process's threads other than the caller is named name. */
static inline int mbt_thread_named(const char *name)
{
	char names[64][MBT_COMM_MAX];
	int n = mbt_thread_names(names, 64);

	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* Waits (at most MBT_ASLEEP_POLLS polls) for the other threads to sleep,
 * then blocks SIGUSR1 in the calling thread (and, through inheritance, in
 * the threads it makes later), sends it to the process and waits for it
 * for at most MBT_SIGNAL_WAIT_S seconds.  1 if the wait took it, else 0. */
static inline int mbt_signal_reaches_wait(void)
{
	struct timespec limit = { MBT_SIGNAL_WAIT_S, 0 };
	sigset_t usr1;

	for (int i = 0; i < MBT_ASLEEP_POLLS && !mbt_others_asleep(); i++)
		usleep(10000);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	if (pthread_sigmask(SIG_BLOCK, &usr1, NULL) != 0 || kill(getpid(), SIGUSR1) != 0)
		return 0;
	return sigtimedwait(&usr1, NULL, &limit) == SIGUSR1;
}

/* In a child process (the threads under test are made there): make()
 * (which starts them), mbt_signal_reaches_wait(), unmake(what make
 * returned).  Returns the child's wait status: exit 0 when the wait took
 * the signal, 1 when it did not come; killed by SIGUSR1 when a thread with
 * the signal open took it.  -1 if fork or waitpid failed. */
static inline int mbt_signal_in_child(void *(*make)(void), void (*unmake)(void *))
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		void *made = make();
		int taken;

		alarm(3 * MBT_SIGNAL_WAIT_S); /* a child that has not finished by then hangs */
		taken = mbt_signal_reaches_wait();
		unmake(made);
		_exit(taken ? 0 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

#endif /* MBT_THREADS_H */
