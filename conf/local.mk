# conf: build rules (paths relative to the top of the tree)
# The example configuration, the systemd units and the init script for
# busybox-style init; paths in the units are filled in at build time.
dist_sysconf_DATA += conf/membroker.conf
systemdsystemunit_DATA = conf/membroker.service conf/membroker.socket
initddir = $(sysconfdir)/init.d
initd_SCRIPTS = conf/membroker
EXTRA_DIST += conf/membroker.service.in conf/membroker.socket conf/membroker.init
CLEANFILES += conf/membroker.service conf/membroker

conf_subst = sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@bindir[@]|$(bindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g'

conf/membroker.service: $(srcdir)/conf/membroker.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && $(conf_subst) $(srcdir)/conf/membroker.service.in > $@

conf/membroker: $(srcdir)/conf/membroker.init Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && $(conf_subst) $(srcdir)/conf/membroker.init > $@ && chmod +x $@

# The units name only units that exist and order without a cycle; the init
# script reports failures (busybox sh and start-stop-daemon).
CONF_TESTS = tests/conf/units.sh tests/conf/initscript.sh
TESTS += $(CONF_TESTS)
EXTRA_DIST += $(CONF_TESTS) tests/conf/units.py
