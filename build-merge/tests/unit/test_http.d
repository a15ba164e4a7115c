build-merge/tests/unit/test_http.o: tests/unit/test_http.c \
 src/http/gzip.h src/http/router.h src/http/server.h src/util/buf.h \
 src/util/err.h src/http/sse.h src/util/log.h src/util/xmalloc.h
src/http/gzip.h:
src/http/router.h:
src/http/server.h:
src/util/buf.h:
src/util/err.h:
src/http/sse.h:
src/util/log.h:
src/util/xmalloc.h:
