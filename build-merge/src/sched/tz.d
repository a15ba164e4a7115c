build-merge/src/sched/tz.o: src/sched/tz.c src/sched/tz.h src/util/err.h \
 src/util/buf.h src/util/xmalloc.h
src/sched/tz.h:
src/util/err.h:
src/util/buf.h:
src/util/xmalloc.h:
