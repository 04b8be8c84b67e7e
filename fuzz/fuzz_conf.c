/*
 * fuzz_conf.c - libFuzzer harness of the config reader (common/mb_conf.c)
 * and the amount parsers (common/mb_size.c), with the real key tables of
 * mbserver and track_fs.
 *
 * The first byte chooses what the rest of the input is:
 *   0  one value for every parser of mb_size.h;
 *   1  a membroker.conf, then mbserver's resolution into broker tunables;
 *   2  a track_fs config file.
 * Checked beyond "no crash, no undefined behaviour":
 *  - a parser returns 0, -EINVAL or -ERANGE, and a failed parse leaves
 *    its output alone;
 *  - a plain decimal number means the same to every parser that takes
 *    one (and a duration without unit is milliseconds);
 *  - after a parse, each key's value, printed as status shows it, is
 *    accepted again and prints the same (except amounts, which print
 *    rounded, "1.0 MiB", in a form the parser does not take);
 *  - nothing is written outside the config struct (ASan, with a guard).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fz_input.h"
#include "mb_conf.h"
#include "mb_log.h"
#include "mb_size.h"

#include "conf.h"  /* mbserver */
#include "tfs.h"   /* track_fs */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FZ_TEXT_MAX 4096
#define GUARD 0x5a

static int err_ok(int r)
{
	return r == 0 || r == -EINVAL || r == -ERANGE;
}

/* Decimal digits only, at most 19 of them (no overflow possible). */
static int small_decimal(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 19)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static void fuzz_values(const char *s)
{
	static const uint64_t bases[] = { 0, 4096, UINT64_C(1) << 33, UINT64_MAX };
	const uint64_t poison = 0xdeadbeefcafef00dULL;
	uint64_t sz[4], u = poison, ms = poison;
	for (size_t i = 0; i < 4; i++) {
		sz[i] = poison;
		int r = mb_parse_size(s, bases[i], &sz[i]);
		FZ_CHECK(err_ok(r));
		FZ_CHECK(r == 0 || sz[i] == poison);
		if (r == 0) {
			char buf[64];
			size_t n = mb_format_size(buf, sizeof(buf), sz[i]);
			FZ_CHECK(n < sizeof(buf) && strlen(buf) == n);
		}
	}
	int ru = mb_parse_u64(s, &u);
	FZ_CHECK(err_ok(ru));
	FZ_CHECK(ru == 0 || u == poison);
	int rd = mb_parse_duration_ms(s, &ms);
	FZ_CHECK(err_ok(rd));
	FZ_CHECK(rd == 0 || ms == poison);
	int b = 7;
	int rb = mb_parse_bool(s, &b);
	FZ_CHECK(err_ok(rb));
	FZ_CHECK(rb != 0 ? b == 7 : b == 0 || b == 1);
	unsigned mode = 0x12345;
	int rm = mb_parse_mode(s, &mode);
	FZ_CHECK(err_ok(rm));
	FZ_CHECK(rm != 0 ? mode == 0x12345 : mode <= 07777);
	if (small_decimal(s)) {
		uint64_t want = strtoull(s, NULL, 10);
		FZ_CHECK(ru == 0 && u == want);
		FZ_CHECK(rd == 0 && ms == want);
		for (size_t i = 0; i < 4; i++)
			FZ_CHECK(sz[i] == want);
	}
}

/* Print every key, set it from what was printed, print again. */
static void round_trip(const struct mb_conf_key *table, void *cfg, size_t cfgsize)
{
	unsigned char *copy = malloc(cfgsize);
	FZ_CHECK(copy != NULL);
	for (const struct mb_conf_key *k = table; k->name; k++) {
		char a[MB_CONF_MAX_LINE], b[MB_CONF_MAX_LINE], err[MB_CONF_ERR_MAX];
		size_t n = mb_conf_format(k, cfg, a, sizeof(a));
		FZ_CHECK(n < sizeof(a) && strlen(a) == n);
		/* Amounts print rounded ("1.0 MiB"), which the parser does
		 * not take back: only the other types must round-trip. */
		if (k->type == MB_CONF_SIZE)
			continue;
		memcpy(copy, cfg, cfgsize);
		int r = mb_conf_set(table, copy, k->name, a, err, sizeof(err));
		FZ_CHECK(r == 0);
		mb_conf_format(k, copy, b, sizeof(b));
		FZ_CHECK(strcmp(a, b) == 0);
	}
	free(copy);
}

static void fuzz_file(const struct mb_conf_key *table, size_t cfgsize,
		      const uint8_t *text, size_t len, int mbserver)
{
	/* The struct sits in a buffer with a guard after it. */
	unsigned char *cfg = malloc(cfgsize + 64);
	FZ_CHECK(cfg != NULL);
	memset(cfg, GUARD, cfgsize + 64);
	FZ_CHECK(mb_conf_defaults(table, cfg) == 0);
	int bad = mb_conf_parse_text(table, cfg, "fuzz.conf",
				     (const char *)text, len);
	FZ_CHECK(bad >= 0);
	for (size_t i = 0; i < 64; i++)
		FZ_CHECK(cfg[cfgsize + i] == GUARD);
	round_trip(table, cfg, cfgsize);
	if (mbserver) {
		struct mbs_resolved res;
		mbs_conf_resolve((const struct mbs_conf *)(void *)cfg, 4096, &res);
	}
	free(cfg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mb_log_init("fuzz_conf", -1, MB_LOG_ERR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned mode = fz_byte(&in) % 3;
	size_t len = in.n < FZ_TEXT_MAX ? in.n : FZ_TEXT_MAX;
	/* The files are parsed straight from libFuzzer's buffer, whose end
	 * ASan guards; the parsers of single values get a C string. */
	char *text = malloc(len + 1);
	FZ_CHECK(text != NULL);
	memcpy(text, in.p, len);
	text[len] = '\0';
	switch (mode) {
	case 0:
		fuzz_values(text);
		break;
	case 1:
		fuzz_file(mbs_conf_table, sizeof(struct mbs_conf), in.p, len, 1);
		break;
	case 2:
		fuzz_file(tfs_conf_keys, sizeof(struct tfs_conf), in.p, len, 0);
		break;
	}
	free(text);
	return 0;
}
