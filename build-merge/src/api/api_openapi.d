build-merge/src/api/api_openapi.o: src/api/api_openapi.c \
 src/api/api_int.h src/api/api.h src/http/hclient.h src/http/server.h \
 src/util/buf.h src/util/err.h src/sched/pool.h src/sched/sched.h \
 src/iso/limits.h src/sched/flow.h src/sched/cron.h src/sched/tz.h \
 src/util/errlist.h src/store/store.h src/http/router.h src/http/sse.h \
 src/store/store_auth.h src/store/store_flows.h src/store/store_runs.h
src/api/api_int.h:
src/api/api.h:
src/http/hclient.h:
src/http/server.h:
src/util/buf.h:
src/util/err.h:
src/sched/pool.h:
src/sched/sched.h:
src/iso/limits.h:
src/sched/flow.h:
src/sched/cron.h:
src/sched/tz.h:
src/util/errlist.h:
src/store/store.h:
src/http/router.h:
src/http/sse.h:
src/store/store_auth.h:
src/store/store_flows.h:
src/store/store_runs.h:
