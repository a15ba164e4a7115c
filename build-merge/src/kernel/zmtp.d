build-merge/src/kernel/zmtp.o: src/kernel/zmtp.c src/kernel/zmtp.h \
 src/util/buf.h src/util/err.h
src/kernel/zmtp.h:
src/util/buf.h:
src/util/err.h:
