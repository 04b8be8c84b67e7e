# track_fs: the FUSE file system that charges its data to the broker
# (GPL-2.0, see COPYING.GPL-2).  Built only when libfuse3 is found.
if HAVE_FUSE
bin_PROGRAMS += track_fs/track_fs
track_fs_track_fs_SOURCES = track_fs/main.c track_fs/ops.c \
	track_fs/charge.c track_fs/walk.c track_fs/uid.c track_fs/conf.c track_fs/tfs.h
track_fs_track_fs_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/libmbclient
track_fs_track_fs_CFLAGS = $(AM_CFLAGS) $(FUSE3_CFLAGS) $(PTHREAD_CFLAGS)
track_fs_track_fs_LDADD = libmbclient/libmbclient.la common/libmbcommon.la \
	$(FUSE3_LIBS) $(PTHREAD_LIBS)

# mount(8) helper for type "track_fs", systemd units, man page.
trackfs_sbindir = $(sbindir)
trackfs_sbin_SCRIPTS = track_fs/mount.track_fs
trackfs_unitdir = $(prefix)/lib/systemd/system
trackfs_unit_DATA = conf/track_fs@.service
dist_trackfs_unit_DATA = conf/scratch.mount
endif
dist_man_MANS += man/track_fs.8
EXTRA_DIST += track_fs/mount.track_fs.in conf/track_fs@.service.in \
	bench/track_fs/bench.sh bench/track_fs/ab.sh bench/track_fs/common.sh \
	bench/track_fs/syscalls.sh bench/track_fs/README bench/track_fs/smallfiles.c
CLEANFILES += track_fs/mount.track_fs conf/track_fs@.service

trackfs_subst = sed -e 's|@bindir@|$(bindir)|g'
track_fs/mount.track_fs: $(top_srcdir)/track_fs/mount.track_fs.in Makefile
	@$(MKDIR_P) track_fs
	$(AM_V_GEN)$(trackfs_subst) $(top_srcdir)/track_fs/mount.track_fs.in >$@.tmp && \
		chmod +x $@.tmp && mv $@.tmp $@
conf/track_fs@.service: $(top_srcdir)/conf/track_fs@.service.in Makefile
	@$(MKDIR_P) conf
	$(AM_V_GEN)$(trackfs_subst) $(top_srcdir)/conf/track_fs@.service.in >$@.tmp && \
		mv $@.tmp $@
