build-merge/src/sched/pool.o: src/sched/pool.c src/sched/pool.h \
 src/util/err.h src/kernel/kmgr.h src/kernel/kclient.h src/kernel/kconn.h \
 src/kernel/kwire.h src/kernel/kspec.h src/util/log.h src/util/xmalloc.h
src/sched/pool.h:
src/util/err.h:
src/kernel/kmgr.h:
src/kernel/kclient.h:
src/kernel/kconn.h:
src/kernel/kwire.h:
src/kernel/kspec.h:
src/util/log.h:
src/util/xmalloc.h:
