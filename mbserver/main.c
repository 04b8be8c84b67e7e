/*
 * main.c - mbserver command line.
 */
#include "config.h"
#include "conf.h"
#include "server.h"
#include "mb_log.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_OVERRIDES 64
#define OVERRIDE_MAX (MBS_LIST_MAX + 32)

enum { OPT_CHECK = 256, OPT_FOREGROUND };

static const struct option long_opts[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "config", required_argument, NULL, 'c' },
	{ "socket", required_argument, NULL, 's' },
	{ "total", required_argument, NULL, 't' },
	{ "log-level", required_argument, NULL, 'l' },
	{ "set", required_argument, NULL, 'o' },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "foreground", no_argument, NULL, OPT_FOREGROUND },
	{ NULL, 0, NULL, 0 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mbserver [OPTION]...\n"
		"The membroker memory-quota broker daemon.\n\n"
		"  -c, --config PATH      configuration file (default %s)\n"
		"  -s, --socket PATH      listening socket (key socket)\n"
		"  -t, --total AMOUNT     quota the broker owns (key total)\n"
		"  -l, --log-level LEVEL  err, warning, notice, info, debug (key log_level)\n"
		"  -o, --set KEY=VALUE    set any configuration key\n"
		"      --check-config     parse the configuration, print it and exit\n"
		"      --foreground       stay in the foreground (always the case)\n"
		"  -h, --help             this help\n"
		"  -V, --version          version\n\n"
		"Options override the file.  SIGHUP reloads the file, SIGTERM and SIGINT\n"
		"stop the broker.  Configuration keys (membroker.conf(5)):\n",
		MBS_DEFAULT_CONFIG);
	fflush(f);
	mb_conf_help(mbs_conf_table, fileno(f));
}

static int check_config(const struct server_opts *o)
{
	struct mbs_conf cf;
	struct mbs_resolved res;
	int bad = mbs_conf_load(&cf, o->config_path, o->config_missing_ok,
				o->overrides, o->noverrides);
	long ps = sysconf(_SC_PAGESIZE);
	if (bad == 0 && mbs_conf_resolve(&cf, ps > 0 ? (uint64_t)ps : 4096, &res) != 0)
		bad++;
	if (bad) {
		fprintf(stderr, "mbserver: %s: %d error%s\n",
			o->config_path ? o->config_path : "(no file)", bad, bad == 1 ? "" : "s");
		return 1;
	}
	for (const struct mb_conf_key *k = mbs_conf_table; k->name; k++) {
		char val[MBS_LIST_MAX + 16];
		mb_conf_format(k, &cf, val, sizeof(val));
		printf("%s = %s\n", k->name, val);
	}
	printf("# %lu pages of %lu bytes owned by the broker\n",
	       (unsigned long)res.bc.initial, (unsigned long)res.bc.page_size);
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[MAX_OVERRIDES][OVERRIDE_MAX];
	static char *overrides[MAX_OVERRIDES];
	struct server_opts o = { MBS_DEFAULT_CONFIG, 1, overrides, 0 };
	int check = 0, c;
	const char *key;

	mb_log_init("mbserver", 2, MB_LOG_NOTICE);
	while ((c = getopt_long(argc, argv, "hVc:s:t:l:o:", long_opts, NULL)) != -1) {
		key = NULL;
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("mbserver (%s)\n", PACKAGE_STRING);
			return 0;
		case 'c':
			o.config_path = optarg;
			o.config_missing_ok = 0;
			continue;
		case 's': key = "socket"; break;
		case 't': key = "total"; break;
		case 'l': key = "log_level"; break;
		case 'o': key = ""; break;
		case OPT_CHECK:
			check = 1;
			continue;
		case OPT_FOREGROUND:
			continue;
		default:
			usage(stderr);
			return 2;
		}
		if (o.noverrides >= MAX_OVERRIDES) {
			fprintf(stderr, "mbserver: too many options\n");
			return 2;
		}
		char *slot = buf[o.noverrides];
		int n = key[0] ? snprintf(slot, OVERRIDE_MAX, "%s=%s", key, optarg) :
			snprintf(slot, OVERRIDE_MAX, "%s", optarg);
		if (n < 0 || n >= OVERRIDE_MAX) {
			fprintf(stderr, "mbserver: option value too long\n");
			return 2;
		}
		overrides[o.noverrides++] = slot;
	}
	if (optind < argc) {
		fprintf(stderr, "mbserver: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check)
		return check_config(&o);
	return server_main(&o);
}
