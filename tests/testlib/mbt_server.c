/*
 * mbt_server.c - start a real mbserver for a test (see mbt_server.h).
 */
#include "mbt_server.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MBT_MAX_ARGS 32
#define MBT_WAIT_STEP_US 10000
#define MBT_WAIT_STEPS 2000

const char *mbt_builddir(void)
{
	const char *d = getenv("top_builddir");
	return d ? d : ".";
}

pid_t mbt_spawn_server(const char *const *args, const char *log, rlim_t nofile,
		       int listen_fd)
{
	char bin[512];
	const char *argv[MBT_MAX_ARGS + 2];
	int argc = 0;

	snprintf(bin, sizeof(bin), "%s/mbserver/mbserver", mbt_builddir());
	argv[argc++] = bin;
	for (int i = 0; args && args[i]; i++) {
		if (argc > MBT_MAX_ARGS)
			return -1;
		argv[argc++] = args[i];
	}
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* A failing test must not leave its server behind. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	if (nofile) {
		struct rlimit rl = { nofile, nofile };
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (listen_fd >= 0) {
		char pidbuf[32];
		dup2(listen_fd, 3);
		snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
		setenv("LISTEN_PID", pidbuf, 1);
		setenv("LISTEN_FDS", "1", 1);
	}
	execv(bin, (char *const *)argv);
	_exit(127);
}

int mbt_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, len + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int mbt_wait_server(pid_t pid, const char *sock)
{
	for (int i = 0; i < MBT_WAIT_STEPS; i++) {
		int fd = mbt_connect(sock);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return -1;
		usleep(MBT_WAIT_STEP_US);
	}
	return -2;
}
