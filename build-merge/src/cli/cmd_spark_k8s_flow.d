build-merge/src/cli/cmd_spark_k8s_flow.o: src/cli/cmd_spark_k8s_flow.c \
 src/cli/cli.h src/sched/flow.h src/iso/limits.h src/sched/cron.h \
 src/sched/tz.h src/util/err.h src/util/errlist.h src/util/buf.h \
 src/spark/sk8s.h src/util/xmalloc.h
src/cli/cli.h:
src/sched/flow.h:
src/iso/limits.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/err.h:
src/util/errlist.h:
src/util/buf.h:
src/spark/sk8s.h:
src/util/xmalloc.h:
