build-merge/src/cli/cmd_spark_task.o: src/cli/cmd_spark_task.c \
 src/cli/cli.h src/kernel/kwire.h src/util/err.h src/spark/scluster.h \
 src/spark/seventlog.h src/spark/sparkspec.h src/util/buf.h \
 src/spark/sprogress.h src/util/dlcurl.h src/util/fsutil.h \
 src/util/timeutil.h src/util/xmalloc.h
src/cli/cli.h:
src/kernel/kwire.h:
src/util/err.h:
src/spark/scluster.h:
src/spark/seventlog.h:
src/spark/sparkspec.h:
src/util/buf.h:
src/spark/sprogress.h:
src/util/dlcurl.h:
src/util/fsutil.h:
src/util/timeutil.h:
src/util/xmalloc.h:
