build-merge/src/notebook/nbhtml.o: src/notebook/nbhtml.c \
 src/notebook/nbhtml.h src/util/buf.h src/notebook/nb.h src/util/err.h \
 src/util/base64.h src/util/xmalloc.h
src/notebook/nbhtml.h:
src/util/buf.h:
src/notebook/nb.h:
src/util/err.h:
src/util/base64.h:
src/util/xmalloc.h:
