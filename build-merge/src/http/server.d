build-merge/src/http/server.o: src/http/server.c src/http/server.h \
 src/util/buf.h src/util/err.h src/http/gzip.h src/util/log.h \
 src/util/xmalloc.h
src/http/server.h:
src/util/buf.h:
src/util/err.h:
src/http/gzip.h:
src/util/log.h:
src/util/xmalloc.h:
