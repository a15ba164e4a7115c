/*
 * api_openapi — GET /api/v1/openapi.json: the OpenAPI 3.0 description of
 * docs/api.md, served as it is written in src/api/openapi.json, which is
 * compiled into the binary with the assembler's .incbin (as web/ is:
 * api_ui.c), so the document is edited and checked as the JSON it is.
 *
 * A static document rather than one assembled from the route table: the
 * table knows methods, paths and flags, but not bodies, answers and field
 * meanings, which are most of what a client generator needs.  Drift is
 * caught by tests instead: the unit test (test_api.c) checks that every
 * route of the table has its path and method in the document and that
 * nothing there lacks a route; the black-box contract test
 * (tests/blackbox/test_openapi_contract.py) validates the document with
 * openapi-spec-validator and lets schemathesis hold a running server to it.
 */
#include "api/api_int.h"

/* The file's text and its end; a NUL follows, so it is also a C string. */
API_INCBIN(api_openapi_json, "src/api/openapi.json");

void api_openapi_get(http_req_t *req, void *ud)
{
    (void)ud;
    http_set_header(req, "Cache-Control", "public, max-age=3600");
    http_respond(req, 200, "application/json", api_openapi_json, (size_t)(api_openapi_json_end - api_openapi_json));
}
