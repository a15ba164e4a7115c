build-merge/src/cli/cmd_flow.o: src/cli/cmd_flow.c src/cli/cli.h \
 src/cli/client.h src/util/buf.h src/util/err.h src/cli/table.h \
 src/notebook/nbparams.h src/sched/flow.h src/iso/limits.h \
 src/sched/cron.h src/sched/tz.h src/util/errlist.h src/sched/sched.h \
 src/sched/pool.h src/store/store.h src/util/base64.h src/util/fsutil.h \
 src/util/timeutil.h src/util/xmalloc.h
src/cli/cli.h:
src/cli/client.h:
src/util/buf.h:
src/util/err.h:
src/cli/table.h:
src/notebook/nbparams.h:
src/sched/flow.h:
src/iso/limits.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/errlist.h:
src/sched/sched.h:
src/sched/pool.h:
src/store/store.h:
src/util/base64.h:
src/util/fsutil.h:
src/util/timeutil.h:
src/util/xmalloc.h:
