build-merge/src/store/store_runs.o: src/store/store_runs.c \
 src/store/store_runs.h src/store/store.h src/util/err.h \
 src/util/xmalloc.h
src/store/store_runs.h:
src/store/store.h:
src/util/err.h:
src/util/xmalloc.h:
