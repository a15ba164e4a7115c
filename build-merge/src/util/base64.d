build-merge/src/util/base64.o: src/util/base64.c src/util/base64.h \
 src/util/buf.h
src/util/base64.h:
src/util/buf.h:
