build-merge/src/spark/sk8s.o: src/spark/sk8s.c src/spark/sk8s.h \
 src/util/err.h src/spark/sparkspec.h src/util/buf.h src/sched/cron.h \
 src/sched/tz.h src/util/xmalloc.h
src/spark/sk8s.h:
src/util/err.h:
src/spark/sparkspec.h:
src/util/buf.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/xmalloc.h:
