build-merge/src/http/hclient.o: src/http/hclient.c src/http/hclient.h \
 src/util/buf.h src/util/timeutil.h src/util/xmalloc.h src/util/dlcurl.h
src/http/hclient.h:
src/util/buf.h:
src/util/timeutil.h:
src/util/xmalloc.h:
src/util/dlcurl.h:
