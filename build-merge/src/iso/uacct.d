build-merge/src/iso/uacct.o: src/iso/uacct.c src/iso/uacct.h \
 src/util/err.h src/util/xmalloc.h
src/iso/uacct.h:
src/util/err.h:
src/util/xmalloc.h:
