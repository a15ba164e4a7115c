build-merge/src/spark/scluster.o: src/spark/scluster.c \
 src/spark/scluster.h src/util/err.h src/util/buf.h src/util/urlesc.h \
 src/util/xmalloc.h
src/spark/scluster.h:
src/util/err.h:
src/util/buf.h:
src/util/urlesc.h:
src/util/xmalloc.h:
