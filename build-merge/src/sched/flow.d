build-merge/src/sched/flow.o: src/sched/flow.c src/sched/flow.h \
 src/iso/limits.h src/sched/cron.h src/sched/tz.h src/util/err.h \
 src/util/errlist.h src/util/buf.h src/kernel/kspec.h src/notebook/nb.h \
 src/notebook/nbparams.h src/sched/dag.h src/sched/tmpl.h \
 src/spark/scluster.h src/util/fsutil.h src/util/xmalloc.h \
 src/util/yamljson.h
src/sched/flow.h:
src/iso/limits.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/err.h:
src/util/errlist.h:
src/util/buf.h:
src/kernel/kspec.h:
src/notebook/nb.h:
src/notebook/nbparams.h:
src/sched/dag.h:
src/sched/tmpl.h:
src/spark/scluster.h:
src/util/fsutil.h:
src/util/xmalloc.h:
src/util/yamljson.h:
