build-merge/src/sched/dag.o: src/sched/dag.c src/sched/dag.h \
 src/sched/flow.h src/iso/limits.h src/sched/cron.h src/sched/tz.h \
 src/util/err.h src/util/errlist.h src/util/buf.h src/util/xmalloc.h
src/sched/dag.h:
src/sched/flow.h:
src/iso/limits.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/err.h:
src/util/errlist.h:
src/util/buf.h:
src/util/xmalloc.h:
