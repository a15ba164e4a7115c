build-merge/src/cli/cmd_kernel_exec.o: src/cli/cmd_kernel_exec.c \
 src/cli/cli.h
src/cli/cli.h:
