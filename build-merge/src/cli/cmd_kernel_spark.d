build-merge/src/cli/cmd_kernel_spark.o: src/cli/cmd_kernel_spark.c \
 src/cli/cli.h src/kernel/kspec.h src/util/err.h src/spark/sparkspec.h \
 src/util/buf.h src/util/fsutil.h src/util/xmalloc.h
src/cli/cli.h:
src/kernel/kspec.h:
src/util/err.h:
src/spark/sparkspec.h:
src/util/buf.h:
src/util/fsutil.h:
src/util/xmalloc.h:
