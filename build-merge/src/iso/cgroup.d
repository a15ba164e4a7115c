build-merge/src/iso/cgroup.o: src/iso/cgroup.c src/iso/cgroup.h \
 src/iso/limits.h src/util/err.h src/util/xmalloc.h
src/iso/cgroup.h:
src/iso/limits.h:
src/util/err.h:
src/util/xmalloc.h:
