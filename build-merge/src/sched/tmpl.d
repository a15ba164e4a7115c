build-merge/src/sched/tmpl.o: src/sched/tmpl.c src/sched/tmpl.h \
 src/sched/tz.h src/util/err.h src/util/buf.h src/util/errlist.h \
 src/util/xmalloc.h src/util/yamljson.h
src/sched/tmpl.h:
src/sched/tz.h:
src/util/err.h:
src/util/buf.h:
src/util/errlist.h:
src/util/xmalloc.h:
src/util/yamljson.h:
