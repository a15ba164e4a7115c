build-merge/src/cli/cmd_kernel.o: src/cli/cmd_kernel.c src/cli/cli.h \
 src/kernel/kspec.h src/util/err.h src/util/buf.h src/util/xmalloc.h
src/cli/cli.h:
src/kernel/kspec.h:
src/util/err.h:
src/util/buf.h:
src/util/xmalloc.h:
