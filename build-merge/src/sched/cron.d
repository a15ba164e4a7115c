build-merge/src/sched/cron.o: src/sched/cron.c src/sched/cron.h \
 src/sched/tz.h src/util/err.h src/util/buf.h src/util/xmalloc.h
src/sched/cron.h:
src/sched/tz.h:
src/util/err.h:
src/util/buf.h:
src/util/xmalloc.h:
