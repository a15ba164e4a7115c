build-merge/src/sched/sup.o: src/sched/sup.c src/sched/sup.h \
 src/util/err.h src/util/fsutil.h src/util/log.h src/util/xmalloc.h
src/sched/sup.h:
src/util/err.h:
src/util/fsutil.h:
src/util/log.h:
src/util/xmalloc.h:
