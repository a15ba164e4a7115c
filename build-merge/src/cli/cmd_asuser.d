build-merge/src/cli/cmd_asuser.o: src/cli/cmd_asuser.c src/cli/cli.h \
 src/iso/cgroup.h src/iso/limits.h src/util/err.h src/iso/uacct.h \
 src/util/xmalloc.h
src/cli/cli.h:
src/iso/cgroup.h:
src/iso/limits.h:
src/util/err.h:
src/iso/uacct.h:
src/util/xmalloc.h:
