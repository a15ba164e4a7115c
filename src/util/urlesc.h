/*
 * urlesc — percent-encoding of a URL path segment or query value: every
 * byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~) as %XX.
 * Used by the CLI's API client for the paths it asks for and by the web
 * UI's server-written view (api_ssr.c) for the links it writes; for the
 * names nbhub allows (flows, tasks, users) it is what the browser's
 * encodeURIComponent gives too.
 */
#ifndef NBHUB_URLESC_H
#define NBHUB_URLESC_H

#include "util/buf.h"

/* s, percent-encoded, appended to b. */
void urlesc_append(buf_t *b, const char *s);

#endif
