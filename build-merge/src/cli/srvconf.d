build-merge/src/cli/srvconf.o: src/cli/srvconf.c src/cli/srvconf.h \
 src/iso/limits.h src/util/errlist.h src/util/buf.h src/iso/uacct.h \
 src/util/err.h src/sched/flow.h src/sched/cron.h src/sched/tz.h \
 src/spark/scluster.h src/util/fsutil.h src/util/xmalloc.h
src/cli/srvconf.h:
src/iso/limits.h:
src/util/errlist.h:
src/util/buf.h:
src/iso/uacct.h:
src/util/err.h:
src/sched/flow.h:
src/sched/cron.h:
src/sched/tz.h:
src/spark/scluster.h:
src/util/fsutil.h:
src/util/xmalloc.h:
