build-merge/src/auth/passwd.o: src/auth/passwd.c src/auth/passwd.h \
 src/util/err.h src/util/xmalloc.h
src/auth/passwd.h:
src/util/err.h:
src/util/xmalloc.h:
