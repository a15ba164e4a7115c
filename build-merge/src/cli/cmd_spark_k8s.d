build-merge/src/cli/cmd_spark_k8s.o: src/cli/cmd_spark_k8s.c \
 src/cli/cli.h src/sched/tz.h src/util/err.h src/spark/sk8s.h \
 src/util/buf.h src/util/jsonyaml.h src/util/xmalloc.h
src/cli/cli.h:
src/sched/tz.h:
src/util/err.h:
src/spark/sk8s.h:
src/util/buf.h:
src/util/jsonyaml.h:
src/util/xmalloc.h:
