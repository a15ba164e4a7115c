build-merge/src/http/notify.o: src/http/notify.c src/http/notify.h \
 src/http/hclient.h src/store/store.h src/util/err.h \
 src/store/store_runs.h src/util/log.h src/util/timeutil.h \
 src/util/xmalloc.h
src/http/notify.h:
src/http/hclient.h:
src/store/store.h:
src/util/err.h:
src/store/store_runs.h:
src/util/log.h:
src/util/timeutil.h:
src/util/xmalloc.h:
