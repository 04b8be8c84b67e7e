/*
 * mbt_server.h - start a real mbserver for a test: fork and exec the
 * built daemon on a private socket, and wait until it really accepts
 * connections (its socket file appears at bind(2), before listen(2)).
 * Plain return codes, so a Check test or any other program can use it.
 */
#ifndef MBT_SERVER_H
#define MBT_SERVER_H

#include <sys/resource.h>
#include <sys/types.h>

/* $top_builddir, or "." when run by hand from the build directory. */
const char *mbt_builddir(void);

/*
 * Fork and exec $top_builddir/mbserver/mbserver with args (NULL-terminated,
 * without argv[0]); its stdout and stderr are appended to log.  nofile > 0
 * sets its descriptor limit; listen_fd >= 0 is handed over as a systemd
 * activated socket (fd 3, LISTEN_PID, LISTEN_FDS).  The server gets SIGTERM
 * if the test dies.  Returns its pid, or -1.
 */
pid_t mbt_spawn_server(const char *const *args, const char *log, rlim_t nofile,
		       int listen_fd);

/* 0 once sock accepts a connection; -1 if pid exited first; -2 after
 * about four seconds. */
int mbt_wait_server(pid_t pid, const char *sock);

/* A connected AF_UNIX stream socket, or -1. */
int mbt_connect(const char *path);

#endif /* MBT_SERVER_H */
