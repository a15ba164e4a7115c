build-merge/src/auth/lockout.o: src/auth/lockout.c src/auth/lockout.h \
 src/util/xmalloc.h
src/auth/lockout.h:
src/util/xmalloc.h:
