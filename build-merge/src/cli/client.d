build-merge/src/cli/client.o: src/cli/client.c src/cli/client.h \
 src/util/buf.h src/util/err.h src/cli/cli.h src/cli/table.h \
 src/util/dlcurl.h src/util/timeutil.h src/util/urlesc.h \
 src/util/xmalloc.h src/util/yamljson.h
src/cli/client.h:
src/util/buf.h:
src/util/err.h:
src/cli/cli.h:
src/cli/table.h:
src/util/dlcurl.h:
src/util/timeutil.h:
src/util/urlesc.h:
src/util/xmalloc.h:
src/util/yamljson.h:
