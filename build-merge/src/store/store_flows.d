build-merge/src/store/store_flows.o: src/store/store_flows.c \
 src/store/store_flows.h src/store/store.h src/util/err.h \
 src/util/xmalloc.h
src/store/store_flows.h:
src/store/store.h:
src/util/err.h:
src/util/xmalloc.h:
