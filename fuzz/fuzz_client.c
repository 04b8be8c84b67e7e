/*
 * fuzz_client.c - libFuzzer harness of the client library's receive path
 * (libmbclient/mbclient.c) against a hostile server.
 *
 * A server thread listens on a private socket.  For each input it accepts
 * the library's connection, sends the server part of the input as it is,
 * closes its side for writing and reads whatever the library sends until
 * the library hangs up; a reconnection within the same input gets an
 * immediate end of file.  Meanwhile the harness opens a handle (any kind)
 * and makes the calls the script part of the input asks for: request,
 * reserve, return, query, status, subscribe, dispatch, cancel, then
 * closes it.  The library must survive whatever it reads (no crash, no
 * undefined behaviour, no read past its buffer, no hang: the run's
 * -timeout catches one), and keep its documented promises:
 *  - every call returns 0 or one of the MB_E* codes (dispatch: a count);
 *  - a REQUEST never reports more pages granted than it asked, a RESERVE
 *    that succeeds reports exactly what it asked;
 *  - a give-back callback is called with a valid urgency and a count
 *    within the wire maximum, and what it frees above what the handle can
 *    give is never sent back as given;
 *  - status rows have a terminated command name and a known kind.
 * Input layout: byte 0 the kind and options, byte 1 the script length
 * (up to 15 steps of 3 bytes), the script, then the server's bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fz_input.h"
#include "mb_log.h"
#include "mb_wire.h"
#include "mbclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_STREAM_MAX 65536
#define FZ_STEPS 15

static int lfd = -1;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char dir_path[64];

/* What the next accepted connection is sent (then it is used up). */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char stream[FZ_STREAM_MAX];
static size_t stream_len;
static int stream_ready;

static uint64_t share_reply; /* what the give-back callback claims to free */

static void *server(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;
		}
		unsigned char buf[FZ_STREAM_MAX];
		size_t len = 0;
		pthread_mutex_lock(&mu);
		if (stream_ready) {
			len = stream_len;
			memcpy(buf, stream, len);
			stream_ready = 0;
		}
		pthread_mutex_unlock(&mu);
		size_t off = 0;
		while (off < len) {
			ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
			if (n <= 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		shutdown(fd, SHUT_WR);
		while (recv(fd, buf, sizeof(buf), 0) > 0)
			;
		close(fd);
	}
}

static void cleanup(void)
{
	unlink(sock_path);
	rmdir(dir_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mb_set_log(-1, 3);
	mb_log_init("fuzz_client", -1, MB_LOG_ERR);
	const char *tmp = getenv("TMPDIR");
	snprintf(dir_path, sizeof(dir_path), "%s/fzcl.XXXXXX",
		 tmp && strlen(tmp) < 32 ? tmp : "/tmp");
	FZ_CHECK(mkdtemp(dir_path) != NULL);
	snprintf(sock_path, sizeof(sock_path), "%s/s", dir_path);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FZ_CHECK(lfd >= 0);
	FZ_CHECK(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	FZ_CHECK(listen(lfd, 16) == 0);
	atexit(cleanup);
	pthread_t t;
	FZ_CHECK(pthread_create(&t, NULL, server, NULL) == 0);
	pthread_detach(t);
	return 0;
}

static uint64_t on_share(void *arg, enum mb_client_urgency urgency, uint64_t pages)
{
	(void)arg;
	FZ_CHECK(urgency == MB_URGENCY_REQUEST || urgency == MB_URGENCY_RESERVE);
	FZ_CHECK(pages <= MB_WIRE_MAX_PAGES);
	return share_reply;
}

static void on_repay(void *arg, uint64_t pages)
{
	(void)arg;
	FZ_CHECK(pages <= MB_WIRE_MAX_PAGES);
}

static void on_event(void *arg, unsigned event, int64_t pool, uint64_t total,
		     uint64_t value)
{
	(void)arg;
	(void)event;
	(void)pool;
	(void)total;
	(void)value;
}

static int on_row(void *arg, const struct mb_status_client *row)
{
	int *rows = arg;
	FZ_CHECK(memchr(row->comm, '\0', sizeof(row->comm)) != NULL);
	FZ_CHECK((unsigned)row->kind <= MB_CLIENT_OBSERVER);
	FZ_CHECK(row->req_type >= 0 && row->req_type <= 2);
	FZ_CHECK(row->share_urgency >= -1 && row->share_urgency <= MB_URGENCY_RESERVE);
	return ++*rows > 1000;
}

static int known(int r)
{
	return r <= 0 && r >= MB_ELOWMEM; /* the lowest code */
}

static void step(mb_client *c, uint8_t op, uint8_t a, uint8_t b)
{
	static const int timeouts[4] = { 0, 50, 2000, -1 };
	uint64_t pages = a, granted = 7777;
	int timeout = timeouts[b & 3];
	struct mb_info info;
	struct mb_status_head head;
	int r, rows = 0;
	share_reply = b >> 2 == 63 ? UINT64_MAX : (uint64_t)(b >> 2);
	switch (op % 8) {
	case 0:
		r = mb_request(c, pages, timeout, &granted);
		FZ_CHECK(known(r));
		FZ_CHECK(granted <= pages);
		break;
	case 1:
		r = mb_reserve(c, pages, timeout, &granted);
		FZ_CHECK(known(r));
		FZ_CHECK(granted <= pages && (r != 0 || granted == pages));
		break;
	case 2:
		FZ_CHECK(known(mb_return(c, pages)));
		break;
	case 3:
		FZ_CHECK(known(mb_query(c, &info)));
		break;
	case 4:
		r = mb_status(c, &head, (op & 8) ? on_row : NULL, &rows);
		FZ_CHECK(known(r));
		break;
	case 5:
		FZ_CHECK(known(mb_subscribe(c, a & MB_EVENT_ALL)));
		break;
	case 6:
		r = mb_dispatch(c, 0);
		FZ_CHECK(r >= 0 || known(r));
		break;
	case 7:
		FZ_CHECK(known(mb_cancel(c)));
		break;
	}
	uint64_t ps = mb_page_size(c);
	FZ_CHECK((ps & (ps - 1)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	uint8_t opt = fz_byte(&in);
	size_t nsteps = fz_byte(&in) % (FZ_STEPS + 1);
	uint8_t script[FZ_STEPS * 3];
	memset(script, 0, sizeof(script));
	fz_bytes(&in, script, nsteps * 3);

	pthread_mutex_lock(&mu);
	stream_len = fz_bytes(&in, stream, sizeof(stream));
	stream_ready = 1;
	pthread_mutex_unlock(&mu);

	static mb_client c;
	struct mb_options o;
	memset(&o, 0, sizeof(o));
	o.socket_path = sock_path;
	o.kind = (enum mb_client_kind)(opt & 3);
	o.source_pages = o.kind == MB_CLIENT_SOURCE ? (uint64_t)(opt >> 2) * 16 : 0;
	o.name = "fuzz";
	o.share = on_share;
	o.repay = on_repay;
	o.event = on_event;
	o.connect_timeout_ms = 2000;
	int r = mb_open(&c, &o);
	FZ_CHECK(known(r));
	for (size_t i = 0; i < nsteps; i++)
		step(&c, script[3 * i], script[3 * i + 1], script[3 * i + 2]);
	FZ_CHECK(known(mb_close(&c)));
	/* A connection that was never accepted must not take the next
	 * input's bytes. */
	pthread_mutex_lock(&mu);
	stream_ready = 0;
	pthread_mutex_unlock(&mu);
	return 0;
}
