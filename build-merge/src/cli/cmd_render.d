build-merge/src/cli/cmd_render.o: src/cli/cmd_render.c src/cli/cli.h \
 src/notebook/nb.h src/util/err.h src/notebook/nbhtml.h src/util/buf.h \
 src/util/fsutil.h src/util/xmalloc.h
src/cli/cli.h:
src/notebook/nb.h:
src/util/err.h:
src/notebook/nbhtml.h:
src/util/buf.h:
src/util/fsutil.h:
src/util/xmalloc.h:
