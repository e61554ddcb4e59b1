/*
 * test_bench.c: `flame bench` (label bench).
 *
 *   test_bench        the library: the update's analytic FLOPs against flame-algorithm.md §13,
 *                     order statistics, JSON lines (written, then read back by the parser below)
 *   test_bench usage  bad usage exits 2 with one line on stderr; --help exits 0
 *   test_bench SUITE  runs `$FLAME_BIN bench SUITE --quick --json FILE` and checks that it exits 0,
 *                     that every line of FILE is a JSON object with the common fields (the BLAS
 *                     core among them), that every measurement passed validation and carries its
 *                     suite's numbers (CPU update records: the fraction of the FMA peak); kernels:
 *                     77 (skipped) when the suite reports that it needs a GPU.
 * Speeds are printed by the suites, never asserted here.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/update.h"
#include "flame_test.h"

/* ------------------------------------------------------------------ a small JSON reader */
typedef enum { JV_NULL, JV_BOOL, JV_NUM, JV_STR, JV_OBJ, JV_ARR } JType;

typedef struct {
    char key[64];
    JType type;
    char str[512];
    double num;
    bool b;
    char raw[2048]; /* nested objects: their text, for a second parse */
} JField;

typedef struct {
    JField f[96];
    int n;
} JRecord;

typedef struct {
    const char *p;
    const char *err;
} JParser;

static void jp_ws(JParser *j) {
    while (*j->p && isspace((unsigned char)*j->p)) {
        j->p++;
    }
}

static bool jp_string(JParser *j, char *out, size_t len) {
    if (*j->p != '"') {
        j->err = "expected a string";
        return false;
    }
    j->p++;
    size_t n = 0;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            j->err = "control character in a string";
            return false;
        }
        if (c == '\\') {
            char e = *j->p++;
            switch (e) {
                case '"':
                case '\\':
                case '/':
                    c = e;
                    break;
                case 'n':
                    c = '\n';
                    break;
                case 't':
                    c = '\t';
                    break;
                case 'r':
                    c = '\r';
                    break;
                case 'b':
                    c = '\b';
                    break;
                case 'f':
                    c = '\f';
                    break;
                case 'u':
                    for (int k = 0; k < 4; k++) {
                        if (!isxdigit((unsigned char)j->p[k])) {
                            j->err = "bad \\u escape";
                            return false;
                        }
                    }
                    j->p += 4;
                    c = '?';
                    break;
                default:
                    j->err = "bad escape";
                    return false;
            }
        }
        if (out && n + 1 < len) {
            out[n++] = c;
        }
    }
    if (*j->p != '"') {
        j->err = "unterminated string";
        return false;
    }
    j->p++;
    if (out) {
        out[n] = 0;
    }
    return true;
}

static bool jp_value(JParser *j, JField *f);

static bool jp_object(JParser *j, JRecord *rec) {
    if (*j->p != '{') {
        j->err = "expected an object";
        return false;
    }
    j->p++;
    jp_ws(j);
    if (*j->p == '}') {
        j->p++;
        return true;
    }
    for (;;) {
        jp_ws(j);
        JField tmp,
            *f = rec && rec->n < (int)(sizeof rec->f / sizeof rec->f[0]) ? &rec->f[rec->n] : &tmp;
        memset(f, 0, sizeof *f);
        if (!jp_string(j, f->key, sizeof f->key)) {
            return false;
        }
        jp_ws(j);
        if (*j->p != ':') {
            j->err = "expected ':'";
            return false;
        }
        j->p++;
        jp_ws(j);
        if (!jp_value(j, f)) {
            return false;
        }
        if (rec && f != &tmp) {
            rec->n++;
        }
        jp_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return true;
        }
        j->err = "expected ',' or '}'";
        return false;
    }
}

static bool jp_value(JParser *j, JField *f) {
    const char *start = j->p;
    if (*j->p == '{') {
        f->type = JV_OBJ;
        if (!jp_object(j, NULL)) {
            return false;
        }
        size_t n = (size_t)(j->p - start);
        n = n < sizeof f->raw - 1 ? n : sizeof f->raw - 1;
        memcpy(f->raw, start, n);
        f->raw[n] = 0;
        return true;
    }
    if (*j->p == '[') {
        f->type = JV_ARR;
        j->p++;
        jp_ws(j);
        if (*j->p == ']') {
            j->p++;
            return true;
        }
        for (;;) {
            JField tmp;
            jp_ws(j);
            if (!jp_value(j, &tmp)) {
                return false;
            }
            jp_ws(j);
            if (*j->p == ',') {
                j->p++;
            } else if (*j->p == ']') {
                j->p++;
                return true;
            } else {
                j->err = "expected ',' or ']'";
                return false;
            }
        }
    }
    if (*j->p == '"') {
        f->type = JV_STR;
        return jp_string(j, f->str, sizeof f->str);
    }
    if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        f->type = JV_BOOL;
        f->b = j->p[0] == 't';
        j->p += f->b ? 4 : 5;
        return true;
    }
    if (!strncmp(j->p, "null", 4)) {
        f->type = JV_NULL;
        j->p += 4;
        return true;
    }
    /* number: -? digits (. digits)? ([eE] [+-]? digits)? */
    const char *q = j->p;
    if (*q == '-') {
        q++;
    }
    if (!isdigit((unsigned char)*q)) {
        j->err = "expected a value";
        return false;
    }
    while (isdigit((unsigned char)*q)) {
        q++;
    }
    if (*q == '.') {
        q++;
        if (!isdigit((unsigned char)*q)) {
            j->err = "bad number";
            return false;
        }
        while (isdigit((unsigned char)*q)) {
            q++;
        }
    }
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q == '+' || *q == '-') {
            q++;
        }
        if (!isdigit((unsigned char)*q)) {
            j->err = "bad exponent";
            return false;
        }
        while (isdigit((unsigned char)*q)) {
            q++;
        }
    }
    f->type = JV_NUM;
    f->num = strtod(j->p, NULL);
    j->p = q;
    return true;
}

/* one line -> record; false with a message on a syntax error or trailing text */
static bool json_parse_line(const char *line, JRecord *rec, const char **err) {
    JParser j = {line, NULL};
    memset(rec, 0, sizeof *rec);
    jp_ws(&j);
    bool ok = jp_object(&j, rec);
    if (ok) {
        jp_ws(&j);
        if (*j.p) {
            ok = false;
            j.err = "text after the object";
        }
    }
    *err = j.err;
    return ok;
}

static const JField *jget(const JRecord *r, const char *key) {
    for (int i = 0; i < r->n; i++) {
        if (!strcmp(r->f[i].key, key)) {
            return &r->f[i];
        }
    }
    return NULL;
}

static const char *jstr(const JRecord *r, const char *key) {
    const JField *f = jget(r, key);
    return f && f->type == JV_STR ? f->str : NULL;
}

/* ------------------------------------------------------------------ library tests */
static FlameConfig resolved_defaults(void) {
    FlameConfig c;
    config_defaults(&c);
    config_resolve(&c);
    return c;
}

FLAME_TEST(flops_match_section_13) {
    /* flame-algorithm.md §13: HalfCheetah F_pi = 0.2975, F_Q = 0.2744 MFLOP; totals 22.8 GF
       collapsed, 53 GF as coded, 15.4 GF with the actor branch on even steps only */
    FlameConfig c = resolved_defaults();
    UpdateFlops f;
    update_flops(&c, 17, 6, &f);
    EXPECT_NEAR("F_pi", f.f_policy, 297472, 0, 0);
    EXPECT_NEAR("F_Q", f.f_critic, 274432, 0, 0);
    EXPECT_NEAR("critic_target", f.critic_target, (2.44 + 4.50 + 0.46 + 0.14) * 1e9, 0, 5e-3);
    EXPECT_NEAR("critic_step", f.critic_step, 0.42e9, 0, 1e-2);
    EXPECT_NEAR("qweight", f.qweight, 14.05e9, 0, 1e-3);
    EXPECT_NEAR("policy_step", f.policy_step, (0.31 + 0.23 + 0.28) * 1e9, 0, 1e-2);
    EXPECT_NEAR("total collapsed", f.all_stages, 22.8e9, 0, 5e-3);
    EXPECT_NEAR("per update (actor branch on even steps)", f.per_update, 15.4e9, 0, 5e-3);
    EXPECT(f.per_update < f.all_stages);
    c.flow.collapse_k = false;
    update_flops(&c, 17, 6, &f);
    EXPECT_NEAR("total as coded", f.all_stages, 53e9, 0, 5e-3);

    /* Humanoid (S=348, D=17): 0.478 / 0.450 MFLOP (three digits: rtol 2e-3), 37.3 GF collapsed,
       86 GF as coded */
    c = resolved_defaults();
    update_flops(&c, 348, 17, &f);
    EXPECT_NEAR("Humanoid F_pi", f.f_policy, 0.478e6, 0, 2e-3);
    EXPECT_NEAR("Humanoid F_Q", f.f_critic, 0.450e6, 0, 2e-3);
    EXPECT_NEAR("Humanoid collapsed", f.all_stages, 37.3e9, 0, 5e-3);
    c.flow.collapse_k = false;
    update_flops(&c, 348, 17, &f);
    EXPECT_NEAR("Humanoid as coded", f.all_stages, 86e9, 0, 1e-2);

    /* FLAME-R: 32 B 20 particle rows (47 GF at HalfCheetah sizes) */
    c.algo = ALGO_FLAME_R;
    c.flow.collapse_k = true;
    c.flow.sample_steps = 0;
    c.entropy.estimator = ENT_AUTO;
    c.entropy.steps = 0;
    config_resolve(&c);
    update_flops(&c, 17, 6, &f);
    double particles = 32.0 * 256 * 20 * f.f_policy;
    EXPECT_NEAR("FLAME-R particles", particles, 47e9, 0, 2e-2);
    EXPECT(f.critic_target > particles);
}

FLAME_TEST(stats_order_statistics) {
    double x[] = {3, 1, 2};
    BenchStats s;
    bench_stats(x, 3, &s);
    EXPECT(s.n == 3 && s.min == 1 && s.max == 3 && s.median == 2 && s.mean == 2);
    EXPECT(x[0] == 3); /* input untouched */
    double y[100];
    for (int i = 0; i < 100; i++) {
        y[i] = 100 - i; /* 100 .. 1 */
    }
    bench_stats(y, 100, &s);
    EXPECT_NEAR("median", s.median, 50.5, 1e-12, 0);
    EXPECT_NEAR("p99", s.p99, 99.01, 1e-9, 0);
    EXPECT_NEAR("p90", s.p90, 90.1, 1e-9, 0);
    bench_stats(y, 1, &s);
    EXPECT(s.median == 100 && s.p99 == 100);
    bench_stats(NULL, 0, &s);
    EXPECT(isnan(s.median));
}

FLAME_TEST(random_inputs_have_unit_moments) {
    double m = 0, v = 0, um = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        double z = bench_rand_normal(5, (uint64_t)i);
        double u = bench_rand_uniform(5, (uint64_t)i);
        EXPECT(u >= 0 && u < 1);
        m += z;
        v += z * z;
        um += u;
    }
    m /= n, v = v / n - m * m, um /= n;
    EXPECT_NEAR("normal mean", m, 0, 0.03, 0);
    EXPECT_NEAR("normal variance", v, 1, 0.04, 0);
    EXPECT_NEAR("uniform mean", um, 0.5, 0.01, 0);
}

FLAME_TEST(json_lines_round_trip) {
    const char *path = "test_bench_lib.jsonl";
    remove(path);
    FlameConfig c = resolved_defaults();
    BenchJson j;
    bench_json_header(&j, "update", "we\"ird\\name\n", "ok", true, false, &c, 17, 6, true);
    bench_json_num(&j, "x", 1.5e-300);
    bench_json_num(&j, "nan", NAN);
    bench_json_int(&j, "big", (int64_t)1 << 40);
    bench_json_key(&j, "nested");
    bench_json_key(&j, "deeper");
    bench_json_bool(&j, "t", true);
    /* left open: bench_json_write closes every level */
    EXPECT(bench_json_write(&j, path) == FLAME_OK);
    bench_json_free(&j);
    bench_json_begin(&j);
    bench_json_str(&j, "second", "line");
    EXPECT(bench_json_write(&j, path) == FLAME_OK);
    bench_json_free(&j);

    FILE *f = fopen(path, "r");
    EXPECT(f != NULL);
    if (!f) {
        return;
    }
    char line[8192];
    JRecord r;
    const char *err = NULL;
    EXPECT(fgets(line, sizeof line, f) != NULL);
    line[strcspn(line, "\n")] = 0;
    EXPECT_MSG(json_parse_line(line, &r, &err), "%s in %s", err ? err : "?", line);
    EXPECT(jstr(&r, "name") && !strcmp(jstr(&r, "name"), "we\"ird\\name\n"));
    EXPECT(jstr(&r, "driver") && !strcmp(jstr(&r, "driver"), "none"));
    EXPECT(jget(&r, "nan") && jget(&r, "nan")->type == JV_NULL);
    EXPECT(jget(&r, "x") && jget(&r, "x")->num == 1.5e-300);
    EXPECT(jget(&r, "big") && jget(&r, "big")->num == 1099511627776.0);
    EXPECT(jget(&r, "sizes") && jget(&r, "sizes")->type == JV_OBJ);
    EXPECT(jget(&r, "nested") && strstr(jget(&r, "nested")->raw, "\"t\": true"));
    EXPECT(fgets(line, sizeof line, f) != NULL);
    line[strcspn(line, "\n")] = 0;
    EXPECT(json_parse_line(line, &r, &err) && r.n == 1);
    EXPECT(fgets(line, sizeof line, f) == NULL);
    fclose(f);
    remove(path);
    /* the reader rejects what is not JSON */
    EXPECT(!json_parse_line("{\"a\": 1,}", &r, &err));
    EXPECT(!json_parse_line("{\"a\": nan}", &r, &err));
    EXPECT(!json_parse_line("{\"a\": 1} x", &r, &err));
    EXPECT(!json_parse_line("{\"a\": \"x}", &r, &err));
    EXPECT(json_parse_line("{\"a\": [1, -2.5e3, {\"b\": null}], \"c\": {}}", &r, &err));
}

/* ------------------------------------------------------------------ the CLI */
static const char *flame_bin(void) {
    const char *b = getenv("FLAME_BIN");
    return b && b[0] ? b : NULL;
}

/* runs a shell command; returns its exit status (-1 when it did not exit normally) */
static int run(const char *cmd) {
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void print_file(const char *path, FILE *to) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        fputs(line, to);
    }
    fclose(f);
    fflush(to);
}

static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return -1;
    }
    int n = 0, c, last = '\n';
    while ((c = fgetc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

static int test_usage(void) {
    const char *bin = flame_bin();
    if (!bin) {
        fprintf(stderr, "FLAME_BIN is not set\n");
        return 1;
    }
    const char *bad[] = {
        "",
        "nosuch",
        "update --bogus",
        "update --config /nonexistent/flame.yaml",
        "update --set no.such.key=1",
        "update --set update.batch_size=abc",
        "update --backend tpu",
        "update --json",
        "update --json /nonexistent-dir/x.jsonl",
        "update --repeats 0",
        "update --env Nope-v0 --quick",
        "update --env HalfCheetah-v5 --env Hopper-v5",
        "act --threads 2",
        "env --threads 0",
        "env --threads 1,x",
        "env --env Nope-v0 --quick",
        "e2e --seconds 1",
        "e2e extra-argument",
#ifdef FLAME_HAVE_CUDA
        /* the lab names are checked before the device */
        "kernels --lab nosuch",
        "kernels --lab mlp_fwd,nosuch",
        "kernels --lab mlp_fwd,",
#endif
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s bench %s >test_bench_usage.out 2>test_bench_usage.err", bin,
                 bad[i]);
        int rc = run(cmd);
        int lines = count_lines("test_bench_usage.err");
        if (rc != 2 || lines != 1) {
            fprintf(stderr,
                    "  FAIL `flame bench %s`: exit %d (want 2), %d stderr line(s) (want 1)\n",
                    bad[i], rc, lines);
            print_file("test_bench_usage.err", stderr);
            failures++;
        } else {
            printf("  ok    `flame bench %s` -> 2: ", bad[i]);
            fflush(stdout);
            FILE *f = fopen("test_bench_usage.err", "r");
            char line[1024] = "";
            if (f) {
                if (!fgets(line, sizeof line, f)) {
                    line[0] = 0;
                }
                fclose(f);
            }
            printf("%s", line);
        }
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s bench --help >test_bench_usage.out 2>&1", bin);
    if (run(cmd) != 0) {
        fprintf(stderr, "  FAIL `flame bench --help` did not exit 0\n");
        failures++;
    }
    remove("test_bench_usage.out");
    remove("test_bench_usage.err");
    printf("%d failure(s)\n", failures);
    return failures ? 1 : 0;
}

/* numbers every ok record of a suite must carry (positive and finite) */
static const char *const *suite_numbers(const char *suite, const char *name) {
    static const char *const update[] = {"updates_per_s",    "ms_median",    "ms_min",
                                         "flops_per_update", "gflops_per_s", NULL};
    static const char *const update_cpu[] = {"updates_per_s",        "ms_median",    "ms_min",
                                             "flops_per_update",     "floor_ratio",  "x_floor",
                                             "ratio_to_sgemm_large", "stage_sum_ms", NULL};
    static const char *const sgemm[] = {"ms_median", "ms_min", "gflops_median", NULL};
    static const char *const act[] = {"p50_ms", "p99_ms",        "mean_ms", "min_ms",
                                      "calls",  "actions_per_s", NULL};
    static const char *const env[] = {"pool_steps_per_s", "raw_steps_per_s", "raw_steps_per_s_1t",
                                      "overhead", NULL};
    static const char *const e2e[] = {"env_steps_per_s", "updates_per_s", "total_s",
                                      "env_steps",       "updates",       NULL};
    static const char *const none[] = {NULL};
    if (!strcmp(suite, "update")) {
        return !strncmp(name, "sgemm/", 6)   ? sgemm
               : !strcmp(name, "update/cpu") ? update_cpu
                                             : update;
    }
    if (!strcmp(suite, "act")) {
        return act;
    }
    if (!strcmp(suite, "env")) {
        return env;
    }
    if (!strcmp(suite, "e2e")) {
        return e2e;
    }
    return none;
}

static int test_suite(const char *suite) {
    const char *bin = flame_bin();
    if (!bin) {
        fprintf(stderr, "FLAME_BIN is not set\n");
        return 1;
    }
    char json[256], out[256], cmd[1024];
    snprintf(json, sizeof json, "test_bench_%s.jsonl", suite);
    snprintf(out, sizeof out, "test_bench_%s.out", suite);
    remove(json);
    snprintf(cmd, sizeof cmd, "%s bench %s --quick --json %s >%s 2>&1", bin, suite, json, out);
    int rc = run(cmd);
    print_file(out, stdout);
    if (rc != 0) {
        fprintf(stderr, "FAIL `flame bench %s --quick` exited %d\n", suite, rc);
        return 1;
    }
    FILE *f = fopen(json, "r");
    if (!f) {
        fprintf(stderr, "FAIL no JSON lines in %s\n", json);
        return 1;
    }
    static const char *const common[] = {"suite",  "name",   "status", "timestamp",
                                         "commit", "device", "driver", NULL};
    bool is_kernels = !strcmp(suite, "kernels");
    int failures = 0, records = 0, ok_records = 0, skipped = 0;
    static char line[1 << 16];
    JRecord *r = malloc(sizeof *r);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        records++;
        const char *err = NULL;
        if (!json_parse_line(line, r, &err)) {
            fprintf(stderr, "FAIL line %d is not a JSON object (%s): %s\n", records, err, line);
            failures++;
            continue;
        }
        const char *status = jstr(r, "status");
        if (status && !strcmp(status, "skipped")) {
            skipped++;
            printf("  skipped: %s (%s)\n", jstr(r, "name") ? jstr(r, "name") : "?",
                   jstr(r, "reason") ? jstr(r, "reason") : "no reason given");
            continue;
        }
        if (is_kernels) {
            ok_records++; /* the CUDA side's own records: well-formed is what is checked here */
            continue;
        }
        for (int k = 0; common[k]; k++) {
            const JField *x = jget(r, common[k]);
            if (!x || x->type != JV_STR || !x->str[0]) {
                fprintf(stderr, "FAIL line %d: no string field \"%s\"\n", records, common[k]);
                failures++;
            }
        }
        const char *name = jstr(r, "name") ? jstr(r, "name") : "";
        if (!jstr(r, "suite") || strcmp(jstr(r, "suite"), suite) != 0) {
            fprintf(stderr, "FAIL %s: suite is not \"%s\"\n", name, suite);
            failures++;
        }
        const JField *cfg = jget(r, "config"), *sizes = jget(r, "sizes");
        const JField *val = jget(r, "validated");
        if (!cfg || cfg->type != JV_STR || !sizes || sizes->type != JV_OBJ) {
            fprintf(stderr, "FAIL %s: no config summary or sizes\n", name);
            failures++;
        }
        if (!status || strcmp(status, "ok") != 0 || !val || val->type != JV_BOOL || !val->b) {
            fprintf(stderr, "FAIL %s: status %s, validated %s (%s)\n", name,
                    status ? status : "(none)", val && val->b ? "true" : "false",
                    jstr(r, "error") ? jstr(r, "error") : "");
            failures++;
            continue;
        }
        const char *const *nums = suite_numbers(suite, name);
        for (int k = 0; nums[k]; k++) {
            const JField *x = jget(r, nums[k]);
            if (!x || x->type != JV_NUM || !(x->num > 0) || !isfinite(x->num)) {
                fprintf(stderr, "FAIL %s: \"%s\" missing or not a positive number\n", name,
                        nums[k]);
                failures++;
            }
        }
        /* CPU records state the BLAS core; where the CPU's FMA peak is known, the update suite
           quotes its GFLOP/s as a fraction of it */
        const JField *core = jget(r, "blas_core"), *cpu_peak = jget(r, "cpu_peak_gflops_core");
        if (!core || core->type != JV_STR || !core->str[0] || !cpu_peak) {
            fprintf(stderr, "FAIL %s: no blas_core or cpu_peak_gflops_core\n", name);
            failures++;
        }
        if ((!strcmp(name, "update/cpu") || !strncmp(name, "sgemm/", 6)) && cpu_peak &&
            cpu_peak->type == JV_NUM) {
            const char *peak_keys[] = {"peak_gflops", "peak_fraction", "clock_ghz_measured",
                                       "peak_gflops_nominal_clock"};
            for (size_t k = 0; k < sizeof peak_keys / sizeof peak_keys[0]; k++) {
                const JField *x = jget(r, peak_keys[k]);
                if (!x || x->type != JV_NUM || !(x->num > 0) || !isfinite(x->num)) {
                    fprintf(stderr, "FAIL %s: \"%s\" missing or not a positive number\n", name,
                            peak_keys[k]);
                    failures++;
                }
            }
        }
        if (!strcmp(suite, "e2e")) {
            const JField *sh = jget(r, "shares");
            if (!sh || sh->type != JV_OBJ || !strstr(sh->raw, "\"update\"") ||
                !strstr(sh->raw, "\"env\"")) {
                fprintf(stderr, "FAIL %s: no phase shares\n", name);
                failures++;
            }
        }
        if (!strcmp(name, "update/cpu")) {
            const JField *st = jget(r, "stages");
            const char *stages[] = {"replay_sample", "critic_target", "critic_step", "qweight",
                                    "policy_step",   "alpha_step",    "polyak"};
            for (size_t k = 0; k < sizeof stages / sizeof stages[0]; k++) {
                char key[64];
                snprintf(key, sizeof key, "\"%s\"", stages[k]);
                if (!st || st->type != JV_OBJ || !strstr(st->raw, key)) {
                    fprintf(stderr, "FAIL %s: no stage %s\n", name, stages[k]);
                    failures++;
                }
            }
        }
        ok_records++;
    }
    fclose(f);
    free(r);
    printf("%s: %d record(s), %d ok, %d skipped, %d failure(s)\n", suite, records, ok_records,
           skipped, failures);
    if (failures) {
        return 1;
    }
    if (ok_records == 0 && skipped > 0) {
        return 77; /* nothing this machine can run (the kernels suite without a GPU) */
    }
    if (ok_records == 0) {
        fprintf(stderr, "FAIL no measurement recorded\n");
        return 1;
    }
    if (!strcmp(suite, "act") && ok_records < 4) {
        fprintf(stderr, "FAIL act: %d records, want batch 1 and num_envs x 2 modes\n", ok_records);
        return 1;
    }
    remove(json);
    remove(out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "usage")) {
        return test_usage();
    }
    if (argc == 2) {
        return test_suite(argv[1]);
    }
    RUN_TEST(flops_match_section_13);
    RUN_TEST(stats_order_statistics);
    RUN_TEST(random_inputs_have_unit_moments);
    RUN_TEST(json_lines_round_trip);
    return flame_test_report();
}
