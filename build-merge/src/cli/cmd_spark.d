build-merge/src/cli/cmd_spark.o: src/cli/cmd_spark.c src/cli/cli.h \
 src/spark/scluster.h src/util/err.h src/util/buf.h src/util/dlcurl.h \
 src/util/fsutil.h src/util/xmalloc.h
src/cli/cli.h:
src/spark/scluster.h:
src/util/err.h:
src/util/buf.h:
src/util/dlcurl.h:
src/util/fsutil.h:
src/util/xmalloc.h:
