build-merge/src/sched/sched.o: src/sched/sched.c src/sched/sched_int.h \
 src/sched/sched.h src/iso/limits.h src/sched/flow.h src/sched/cron.h \
 src/sched/tz.h src/util/err.h src/util/errlist.h src/util/buf.h \
 src/sched/pool.h src/store/store.h src/sched/sup.h \
 src/store/store_flows.h src/store/store_runs.h src/sched/dag.h \
 src/store/store_auth.h src/util/fsutil.h src/util/log.h \
 src/util/timeutil.h src/util/xmalloc.h
src/sched/sched_int.h:
src/sched/sched.h:
src/iso/limits.h:
src/sched/flow.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/err.h:
src/util/errlist.h:
src/util/buf.h:
src/sched/pool.h:
src/store/store.h:
src/sched/sup.h:
src/store/store_flows.h:
src/store/store_runs.h:
src/sched/dag.h:
src/store/store_auth.h:
src/util/fsutil.h:
src/util/log.h:
src/util/timeutil.h:
src/util/xmalloc.h:
