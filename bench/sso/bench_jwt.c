/*
 * bench_jwt — what checking an ID token costs with a warm JWKS (issue 18:
 * at most 50 us), against PyJWT doing the same checks on the same tokens.
 *
 * Keys are made here (RSA 2048, P-256; the JWKS lists an RSA-OAEP "enc" key
 * first, as Keycloak's does) and the tokens look like Keycloak's ID tokens
 * (about 1 KB of claims).  Each call is timed on its own (CLOCK_MONOTONIC),
 * N calls per case (default 10000) after 500 warm-up calls; medians and
 * p90s are printed.  Rows: jwt_verify, jwks_cache_verify on a warm cache
 * (the path the server takes), the same with the signature check alone
 * (EVP_DigestVerify, the floor), then PyJWT 2 (bench/sso/bench_pyjwt.py,
 * run with $PYTHON or .venv/bin/python) verifying the same tokens.
 *
 * Usage: make bench-sso, or build/bench/bench_jwt [-n N] [--no-python]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jwtkit.h"

#include "auth/jwks.h"
#include "auth/jwt.h"
#include "util/jparse.h"

#define ISS "https://idp.example/realms/nbhub"

static uint64_t ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    double med_us, p90_us;
} stat_t;

static stat_t stats(uint64_t *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_u64);
    stat_t s = { t[n / 2] / 1000.0, t[n * 9 / 10] / 1000.0 };
    return s;
}

typedef enum { M_VERIFY, M_CACHE, M_SIG } mode_t_;

static stat_t run(mode_t_ m, const jwks_t *ks, jwks_cache_t *c, const tkey_t *k, const char *tok, int n)
{
    jwt_policy_t p;
    jwt_policy_init(&p);
    p.issuer = ISS;
    p.audience = "nbhub";
    p.client_id = "nbhub";
    p.nonce = "n-123";
    size_t len = strlen(tok);
    /* the signature alone: what EVP costs, the floor under everything */
    const char *dot = strrchr(tok, '.');
    buf_t sig = BUF_INIT;
    base64url_decode_append(&sig, dot + 1, strlen(dot + 1));
    unsigned char *der = NULL;
    size_t dl = sig.len;
    if (k->ec) {
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig.data, 32, NULL), BN_bin2bn((unsigned char *)sig.data + 32, 32, NULL));
        dl = (size_t)i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
    }
    uint64_t *t = xmalloc(sizeof *t * (size_t)n);
    for (int i = -500; i < n; i++) {
        nb_err_t err;
        json_t *cl = NULL;
        uint64_t t0 = ns();
        int rc;
        if (m == M_VERIFY) {
            rc = jwt_verify(ks, tok, len, &p, &cl, &err);
        } else if (m == M_CACHE) {
            rc = jwks_cache_verify(c, tok, len, &p, JWKS_ID_TOKEN, &cl, &err, NULL, NULL);
        } else {
            EVP_MD_CTX *ctx = EVP_MD_CTX_new();
            rc = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
                         EVP_DigestVerify(ctx, der ? der : (unsigned char *)sig.data, dl, (const unsigned char *)tok,
                                          (size_t)(dot - tok)) == 1
                     ? 0
                     : -1;
            EVP_MD_CTX_free(ctx);
        }
        json_decref(cl);
        uint64_t dt = ns() - t0;
        if (rc != 0) {
            fprintf(stderr, "bench_jwt: verification failed (%d)\n", rc);
            exit(1);
        }
        if (i >= 0) t[i] = dt;
    }
    stat_t s = stats(t, n);
    free(t);
    buf_free(&sig);
    OPENSSL_free(der);
    return s;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

int main(int argc, char **argv)
{
    int n = 10000, python = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-python")) python = 0;
        else {
            fprintf(stderr, "usage: bench_jwt [-n N] [--no-python]\n");
            return 2;
        }
    }
    if (n < 10) n = 10;
    tkey_t rsa, ec, enc;
    tkey_gen(&rsa, 0, "Zq3Yv0yB8n5sQ2Jt9wXr1kLm4pA6cDfE7gHiJ0kLmN8");
    tkey_gen(&ec, 1, "pQ7rS9tU1vW3xY5zA7bC9dE1fG3hI5jK7lM9nO1pQ3r");
    tkey_gen(&enc, 0, "aB2cD4eF6gH8iJ0kL2mN4oP6qR8sT0uV2wX4yZ6aB8c");
    char *j[3] = { tkey_jwk(&enc, "enc", "RSA-OAEP", NULL), tkey_jwk(&rsa, "sig", "RS256", NULL),
                   tkey_jwk(&ec, "sig", "ES256", NULL) };
    buf_t doc = BUF_INIT;
    buf_printf(&doc, "{\"keys\":[%s,%s,%s]}", j[0], j[1], j[2]);
    buf_putc(&doc, '\0');
    long long now = (long long)time(NULL);
    /* A Keycloak ID token's claims, give or take. */
    buf_t pl = BUF_INIT;
    buf_printf(&pl,
               "{\"exp\":%lld,\"iat\":%lld,\"auth_time\":%lld,\"jti\":\"4f1c2a9e-6d3b-4b8e-9a51-0c7e2f8d1b36\","
               "\"iss\":\"" ISS "\",\"aud\":\"nbhub\",\"sub\":\"8a1f0c2e-3b4d-4e5f-9a6b-7c8d9e0f1a2b\",\"typ\":\"ID\","
               "\"azp\":\"nbhub\",\"nonce\":\"n-123\",\"sid\":\"0b5f6e7d-8c9b-4a3f-2e1d-0c9b8a7f6e5d\","
               "\"at_hash\":\"x4DtKpN2vQ8sR1mL7wY3zA\",\"acr\":\"1\",\"email_verified\":true,"
               "\"name\":\"Alice Example\",\"preferred_username\":\"alice\",\"given_name\":\"Alice\","
               "\"family_name\":\"Example\",\"email\":\"alice@example.com\",\"groups\":[\"admins\",\"data\"]}",
               now + 3600, now - 5, now - 5);
    buf_putc(&pl, '\0');
    char *trs = jwt_sign(&rsa, pl.data), *tes = jwt_sign(&ec, pl.data);

    jwks_t *ks;
    nb_err_t err;
    if (jwks_parse(doc.data, doc.len - 1, &ks, &err) != 0) {
        fprintf(stderr, "bench_jwt: %s\n", err.msg);
        return 1;
    }
    jwks_cache_t *c = jwks_cache_new(NULL, "http://127.0.0.1:1/unused", 0);
    if (jwks_cache_set(c, doc.data, doc.len - 1, &err) != 0) return 1;

    stat_t r[2][3];
    const char *tok[2] = { trs, tes };
    const tkey_t *key[2] = { &rsa, &ec };
    for (int a = 0; a < 2; a++)
        for (int m = 0; m < 3; m++) r[a][m] = run((mode_t_)m, ks, c, key[a], tok[a], n);

    double py[2][2] = { { -1, -1 }, { -1, -1 } };
    char pyver[32] = "not run";
    if (python) {
        char dir[] = "/tmp/bench_jwt.XXXXXX";
        if (!mkdtemp(dir)) return 1;
        write_file(dir, "jwks.json", doc.data);
        write_file(dir, "rs256.jwt", trs);
        write_file(dir, "es256.jwt", tes);
        const char *pybin = getenv("PYTHON") ? getenv("PYTHON") : ".venv/bin/python";
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s bench/sso/bench_pyjwt.py %s %d", pybin, dir, n);
        FILE *pf = popen(cmd, "r");
        buf_t out = BUF_INIT;
        char line[4096];
        while (pf && fgets(line, sizeof line, pf)) buf_puts(&out, line);
        int st = pf ? pclose(pf) : -1;
        json_t *jo = st == 0 && out.len ? jparse(out.data, out.len, 0, NULL) : NULL;
        if (jo) {
            snprintf(pyver, sizeof pyver, "%s", json_string_value(json_object_get(jo, "pyjwt")));
            const char *names[2] = { "rs256", "es256" };
            for (int a = 0; a < 2; a++) {
                py[a][0] = json_number_value(json_object_get(json_object_get(jo, names[a]), "median_us"));
                py[a][1] = json_number_value(json_object_get(json_object_get(jo, names[a]), "p90_us"));
            }
            json_decref(jo);
        } else {
            fprintf(stderr, "bench_jwt: PyJWT side failed (%s): install pyjwt[crypto] (requirements-dev.txt)\n", cmd);
        }
        buf_free(&out);
        for (const char *f = "jwks.json"; f; f = !strcmp(f, "jwks.json") ? "rs256.jwt" : !strcmp(f, "rs256.jwt") ? "es256.jwt" : NULL) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", dir, f);
            unlink(p);
        }
        rmdir(dir);
    }

    printf("ID token of %zu bytes (claims %zu bytes), %d calls per case after 500 warm-up, %s\n", strlen(trs),
           strlen(pl.data), n, OpenSSL_version(OPENSSL_VERSION));
    printf("\n| alg | nbhub jwt_verify median (us) | p90 | nbhub jwks_cache_verify, warm (us) | p90 | "
           "EVP_DigestVerify alone (us) | PyJWT %s decode (us) | p90 | PyJWT / nbhub | target <= 50 us |\n",
           pyver);
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    const char *an[2] = { "RS256", "ES256" };
    int pass = 1;
    for (int a = 0; a < 2; a++) {
        double worst = r[a][0].med_us > r[a][1].med_us ? r[a][0].med_us : r[a][1].med_us;
        pass &= worst <= 50.0;
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | ", an[a], r[a][0].med_us, r[a][0].p90_us, r[a][1].med_us,
               r[a][1].p90_us, r[a][2].med_us);
        if (py[a][0] >= 0) printf("%.1f | %.1f | %.1fx | ", py[a][0], py[a][1], py[a][0] / r[a][0].med_us);
        else printf("- | - | - | ");
        printf("%s |\n", worst <= 50.0 ? "PASS" : "MISS");
    }
    jwks_cache_free(c);
    jwks_free(ks);
    free(trs);
    free(tes);
    for (int i = 0; i < 3; i++) free(j[i]);
    buf_free(&doc);
    buf_free(&pl);
    tkey_free(&rsa);
    tkey_free(&ec);
    tkey_free(&enc);
    return pass ? 0 : 3;
}
