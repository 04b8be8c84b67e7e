/*
 * server.h - the mbserver daemon: sockets, epoll loop, signals, reload.
 */
#ifndef MBSERVER_SERVER_H
#define MBSERVER_SERVER_H

#include "conf.h"

struct server_opts {
	const char *config_path;
	int config_missing_ok;
	char **overrides;   /* "key=value" from the command line */
	int noverrides;
};

/* Run the daemon until SIGTERM/SIGINT.  Returns the exit status. */
int server_main(const struct server_opts *opts);

#endif /* MBSERVER_SERVER_H */
