build-merge/src/cli/cmd_runs.o: src/cli/cmd_runs.c src/cli/cli.h \
 src/cli/client.h src/util/buf.h src/util/err.h src/cli/table.h \
 src/util/fsutil.h src/util/xmalloc.h
src/cli/cli.h:
src/cli/client.h:
src/util/buf.h:
src/util/err.h:
src/cli/table.h:
src/util/fsutil.h:
src/util/xmalloc.h:
