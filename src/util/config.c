/*
 * config.c: defaults, YAML loading (libcyaml schema generated from the X-macro tables), the typed
 * value parser shared with --set, "auto" resolution, cross-field validation and the YAML dump.
 *
 * The schema maps every section to a mapping and every key to a scalar; libcyaml rejects unknown
 * keys and non-scalar values, then each scalar goes through config_set_value(), the same typed,
 * range-checked parser that `--set key=value` uses, so both report errors the same way.
 */
#include "flame/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cyaml/cyaml.h>
#include <yaml.h>

#include "flame/check.h"
#include "flame/fsutil.h"

#define CONFIG_FILE_MAX (1 << 20) /* bytes of a config file: every key fits in a few kilobytes */

/* ------------------------------------------------------------------ enum name lists */
static const char *const flame_enum_algo[] = {"flame-m", "flame-r", "sac", NULL};
static const char *const flame_enum_compat[] = {"reference", "consistent", NULL};
static const char *const flame_enum_backend[] = {"auto", "cpu", "cuda", NULL};
static const char *const flame_enum_kernels[] = {"fused", "cublas", NULL};
static const char *const flame_enum_precision[] = {"fp32", "tf32", NULL};
static const char *const flame_enum_activation[] = {"auto", "mish", "relu", "gelu", "identity", NULL};
static const char *const flame_enum_estimator[] = {"auto",    "reference3", "decoupled", "ode",
                                                   "biased1", "exact",      "none",      NULL};
static const char *const flame_enum_probe[] = {"gaussian", "rademacher", NULL};
static const char *const flame_enum_quirk[] = {"auto", "reference", "consistent", NULL};
static const char *const flame_enum_softmax_temp[] = {"auto", "exp_alpha", "alpha", NULL};
static const char *const flame_enum_td_entropy[] = {"auto", "minus", "plus", "omit", NULL};
static const char *const flame_enum_tri[] = {"auto", "yes", "no", NULL};
static const char *const flame_enum_next_policy[] = {"auto", "online", "ema", NULL};
static const char *const flame_enum_stage_path[] = {"staged", "fused", NULL};
static const char *const flame_enum_small_rows[] = {"tile", "cluster", NULL};
static const char *const flame_enum_reductions[] = {"block", "grid", NULL};
#define flame_enum_none NULL

/* ------------------------------------------------------------------ the field table */
#define FLAME_CFG_PATH_root(n) n
#define FLAME_CFG_PATH_run(n) run.n
#define FLAME_CFG_PATH_env(n) env.n
#define FLAME_CFG_PATH_update(n) update.n
#define FLAME_CFG_PATH_net(n) net.n
#define FLAME_CFG_PATH_flow(n) flow.n
#define FLAME_CFG_PATH_optim(n) optim.n
#define FLAME_CFG_PATH_alpha(n) alpha.n
#define FLAME_CFG_PATH_entropy(n) entropy.n
#define FLAME_CFG_PATH_quirks(n) quirks.n
#define FLAME_CFG_PATH_backend(n) backend.n

#define FLAME_CFG_ROW(sec, name, kind, def, lo, hi, en, help)                                      \
    {#sec, #name, NULL, CFG_##kind, offsetof(FlameConfig, FLAME_CFG_PATH_##sec(name)), def,        \
     (double)(lo), (double)(hi), flame_enum_##en, help},
#define FLAME_CFG_SECTION_ROWS(sec, table) table(FLAME_CFG_ROW)

static ConfigField g_fields[] = {FLAME_CONFIG_SECTIONS(FLAME_CFG_SECTION_ROWS)};
#define NFIELDS ((int)(sizeof g_fields / sizeof g_fields[0]))
static char g_keys[NFIELDS][96];
static int g_fields_ready = 0;

static void fields_init(void) {
    if (g_fields_ready) {
        return;
    }
    for (int i = 0; i < NFIELDS; i++) {
        if (!strcmp(g_fields[i].section, "root")) {
            g_fields[i].section = "";
            snprintf(g_keys[i], sizeof g_keys[i], "%s", g_fields[i].name);
        } else {
            snprintf(g_keys[i], sizeof g_keys[i], "%s.%s", g_fields[i].section, g_fields[i].name);
        }
        g_fields[i].key = g_keys[i];
    }
    g_fields_ready = 1;
}

const ConfigField *config_fields(int *count) {
    fields_init();
    *count = NFIELDS;
    return g_fields;
}

const ConfigField *config_find_field(const char *key) {
    fields_init();
    for (int i = 0; i < NFIELDS; i++) {
        if (!strcmp(g_fields[i].key, key)) {
            return &g_fields[i];
        }
    }
    return NULL;
}

static void enum_list(const ConfigField *f, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; f->enum_names[i]; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, n - len, "%s%s", i ? "|" : "", f->enum_names[i]);
    }
}

static void fmt_double(double v, char *buf, size_t n);

/* a range bound: %g when that is exact, else the shortest text that reads back to it */
static void fmt_bound(double v, char *buf, size_t n) {
    snprintf(buf, n, "%g", v);
    if (strtod(buf, NULL) != v) {
        fmt_double(v, buf, n);
    }
}

static void range_text(const ConfigField *f, char *buf, size_t n) {
    /* the bounds exactly as they are enforced */
    char lo[40], hi[40];
    fmt_bound(f->lo, lo, sizeof lo);
    fmt_bound(f->hi, hi, sizeof hi);
    switch (f->kind) {
        case CFG_INT:
        case CFG_I64:
            snprintf(buf, n, "an integer in [%" PRId64 ", %" PRId64 "]", (int64_t)f->lo,
                     (int64_t)f->hi);
            break;
        case CFG_FLOAT:
            snprintf(buf, n, "a number in [%s, %s]", lo, hi);
            break;
        case CFG_AFLOAT:
            snprintf(buf, n, "auto or a number in [%s, %s]", lo, hi);
            break;
        case CFG_BOOL:
            snprintf(buf, n, "true or false");
            break;
        case CFG_STR:
            snprintf(buf, n, "a string of at most %d bytes", FLAME_CFG_STR - 1);
            break;
        case CFG_ENUM: {
            char list[256];
            enum_list(f, list, sizeof list);
            snprintf(buf, n, "one of %s", list);
            break;
        }
    }
}

/* ------------------------------------------------------------------ typed parsing */
static int parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = true;
            return 1;
        }
        if (!strcasecmp(s, no[i])) {
            *out = false;
            return 1;
        }
    }
    return 0;
}

/* A decimal number as YAML writes it: [+-] digits [. digits] [(e|E) [+-] digits], at least one
   digit before the exponent, YAML-style single underscores between digits. Splits it into its
   sign, its mantissa digits without underscores (NUL-terminated, in `digits`, which has room for
   strlen(s) + 1 bytes), the number of those digits after the point, and the exponent (clamped to
   +-100000). Returns 0 when s is anything else (whatever its length). */
static int split_number(const char *s, bool *neg, char *digits, long *frac, long *exp10) {
    const char *p = s;
    digits[0] = '\0'; /* a string even when s is rejected on its first character */
    *neg = false;
    *frac = 0;
    *exp10 = 0;
    if (*p == '+' || *p == '-') {
        *neg = *p == '-';
        p++;
    }
    size_t nd = 0;
    bool point = false;
    for (; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p >= '0' && *p <= '9') {
            digits[nd++] = *p;
            digits[nd] = '\0'; /* a string on every way out */
            *frac += point;
        } else if (*p == '_') {
            /* only between two digits */
            if (p == s || !isdigit((unsigned char)p[-1]) || !isdigit((unsigned char)p[1])) {
                return 0;
            }
        } else if (*p == '.' && !point) {
            point = true;
        } else {
            return 0;
        }
    }
    if (nd == 0) {
        return 0;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        bool eneg = false;
        if (*p == '+' || *p == '-') {
            eneg = *p == '-';
            p++;
        }
        if (!isdigit((unsigned char)*p)) {
            return 0;
        }
        long e = 0;
        for (; isdigit((unsigned char)*p); p++) {
            e = e < 100000 ? e * 10 + (*p - '0') : e;
        }
        if (*p) {
            return 0;
        }
        *exp10 = eneg ? -e : e;
    }
    return 1;
}

/* Parses a number (split_number's form) to the nearest double; 0 when it is not one, or is not
   finite, or underflows. */
static int parse_double(const char *s, double *out) {
    size_t n = strlen(s);
    char *digits = malloc(n + 1), *text = malloc(n + 48);
    FLAME_CHECK(digits && text, "out of memory parsing a number");
    bool neg;
    long frac, e;
    int ok = split_number(s, &neg, digits, &frac, &e);
    if (ok) {
        /* the same number without underscores, for strtod */
        size_t nd = strlen(digits);
        snprintf(text, n + 48, "%s%.*s.%se%ld", neg ? "-" : "", (int)(nd - (size_t)frac), digits,
                 digits + nd - (size_t)frac, e);
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        bool zero = strspn(digits, "0") == nd;
        ok = *end == '\0' && isfinite(v) && (errno != ERANGE || zero) && (v != 0 || zero);
        if (ok) {
            *out = v;
        }
    }
    free(digits), free(text);
    return ok;
}

int config_parse_integer(const char *s, int64_t *out) {
    size_t n = strlen(s);
    char *digits = malloc(n + 1);
    FLAME_CHECK(digits, "out of memory parsing a number");
    bool neg;
    long frac, e;
    int ok = split_number(s, &neg, digits, &frac, &e);
    if (!ok) {
        free(digits);
        return 0;
    }
    /* value = digits * 10^(e - frac): drop the leading zeros, then the fractional part must be
       zeros for the number to be an integer */
    const char *d = digits + strspn(digits, "0");
    long nd = (long)strlen(d), scale = e - frac;
    uint64_t mag = 0;
    if (ok && nd > 0 && scale < 0) {
        long cut = -scale < nd ? -scale : nd;
        for (long i = nd - cut; i < nd; i++) {
            ok = ok && d[i] == '0';
        }
        nd -= cut;
        scale = 0;
    }
    for (long i = 0; ok && i < nd + (nd > 0 ? scale : 0); i++) {
        unsigned c = i < nd ? (unsigned)(d[i] - '0') : 0u;
        ok = mag <= (UINT64_MAX - c) / 10;
        mag = ok ? mag * 10 + c : mag;
    }
    free(digits);
    /* int64: magnitude up to 2^63 - 1, or 2^63 when negative */
    if (!ok || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u)) {
        return 0;
    }
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 1;
}

int config_set_value(FlameConfig *cfg, const ConfigField *f, const char *value, const char *origin) {
    char *base = (char *)cfg + f->offset;
    char range[320], shown[160];
    range_text(f, range, sizeof range);
#define BAD()                                                                                      \
    flame_errorf(FLAME_EINPUT, "%s: %s = '%s' is not valid: expected %s", origin, f->key,         \
                 fs_abbrev(value, shown, sizeof shown), range)
    switch (f->kind) {
        case CFG_INT:
        case CFG_I64: {
            /* exact: no detour through a double, which would round large values */
            int64_t v;
            if (!config_parse_integer(value, &v) || v < (int64_t)f->lo || v > (int64_t)f->hi) {
                return BAD();
            }
            if (f->kind == CFG_INT) {
                *(int *)base = (int)v;
            } else {
                *(int64_t *)base = v;
            }
            return FLAME_OK;
        }
        case CFG_FLOAT:
        case CFG_AFLOAT: {
            if (f->kind == CFG_AFLOAT && !strcasecmp(value, "auto")) {
                *(double *)base = NAN;
                return FLAME_OK;
            }
            double v;
            if (!parse_double(value, &v) || v < f->lo || v > f->hi) {
                return BAD();
            }
            *(double *)base = v;
            return FLAME_OK;
        }
        case CFG_BOOL: {
            bool b;
            if (!parse_bool(value, &b)) {
                return BAD();
            }
            *(bool *)base = b;
            return FLAME_OK;
        }
        case CFG_STR:
            if (strlen(value) >= FLAME_CFG_STR) {
                return BAD();
            }
            snprintf(base, FLAME_CFG_STR, "%s", value);
            return FLAME_OK;
        case CFG_ENUM:
            for (int i = 0; f->enum_names[i]; i++) {
                if (!strcmp(value, f->enum_names[i])) {
                    *(int *)base = i;
                    return FLAME_OK;
                }
            }
            return BAD();
    }
#undef BAD
    return flame_errorf(FLAME_EINPUT, "%s: %s has an unknown kind", origin, f->key);
}

void config_defaults(FlameConfig *cfg) {
    fields_init();
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < NFIELDS; i++) {
        int rc = config_set_value(cfg, &g_fields[i], g_fields[i].def, "defaults");
        FLAME_CHECK(rc == FLAME_OK, "bad default for %s: %s", g_fields[i].key, flame_last_error());
    }
}

int config_set(FlameConfig *cfg, const char *assignment) {
    fields_init();
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) {
        return flame_errorf(FLAME_EINPUT,
                            "--set '%s': expected key=value, e.g. --set update.batch_size=512",
                            assignment);
    }
    char key[128];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key) {
        return flame_errorf(FLAME_EINPUT, "--set: key too long in '%s'", assignment);
    }
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    const ConfigField *f = config_find_field(key);
    if (!f) {
        return flame_errorf(FLAME_EINPUT,
                            "--set: unknown key '%s'; `flame train --help-config` lists every key",
                            key);
    }
    return config_set_value(cfg, f, eq + 1, "--set");
}

/* ------------------------------------------------------------------ YAML loading via libcyaml */
typedef struct {
    char msg[1024];  /* first error message */
    char path[512];  /* last backtrace entry: the key being loaded */
    int line;
} CyamlLog;

static void cyaml_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
    CyamlLog *log = ctx;
    if (level < CYAML_LOG_ERROR) {
        return;
    }
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, args);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) {
        buf[--n] = '\0';
    }
    const char *s = buf;
    while (*s == ' ') {
        s++;
    }
    if (!strncmp(s, "Load: ", 6)) {
        s += 6;
    }
    if (!strncmp(s, "Backtrace:", 10) || !*s) {
        return;
    }
    if (!strncmp(s, "in mapping field ", 17) || !strncmp(s, "in ", 3)) {
        /* backtrace, innermost first: "in mapping (line: 2, ...)", "in mapping field 'sec' (...)" */
        if (!log->path[0] && !strncmp(s, "in mapping field ", 17)) {
            snprintf(log->path, sizeof log->path, "%s", s);
        }
        const char *l = strstr(s, "line: ");
        if (l && !log->line) {
            log->line = atoi(l + 6);
        }
        return;
    }
    if (!log->msg[0]) {
        snprintf(log->msg, sizeof log->msg, "%s", s);
    }
}

typedef struct {
    cyaml_schema_field_t *root_fields;
    cyaml_schema_field_t *section_fields; /* all sections' fields, NULL-key separated */
    cyaml_schema_value_t top;
} Schema;

static void schema_build(Schema *s) {
    fields_init();
    /* worst case: every field at the root plus one terminator per section */
    s->root_fields = flame_calloc((size_t)NFIELDS + 32, sizeof(cyaml_schema_field_t));
    s->section_fields = flame_calloc((size_t)NFIELDS + 64, sizeof(cyaml_schema_field_t));
    int nroot = 0, nsec = 0;
    for (int i = 0; i < NFIELDS;) {
        const char *sec = g_fields[i].section;
        int first = i;
        while (i < NFIELDS && !strcmp(g_fields[i].section, sec)) {
            i++;
        }
        cyaml_schema_field_t *dst = sec[0] ? &s->section_fields[nsec] : NULL;
        for (int j = first; j < i; j++) {
            cyaml_schema_field_t leaf = {0};
            leaf.key = g_fields[j].name;
            leaf.data_offset = (uint32_t)((sec[0] ? (j - first) : j) * sizeof(char *));
            leaf.value.type = CYAML_STRING;
            leaf.value.flags = (enum cyaml_flag)(CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL);
            leaf.value.data_size = sizeof(char);
            leaf.value.string.min = 0;
            leaf.value.string.max = CYAML_UNLIMITED;
            if (sec[0]) {
                s->section_fields[nsec++] = leaf;
            } else {
                s->root_fields[nroot++] = leaf;
            }
        }
        if (sec[0]) {
            nsec++; /* terminator (zeroed) */
            cyaml_schema_field_t m = {0};
            m.key = sec;
            m.data_offset = (uint32_t)(first * sizeof(char *));
            m.value.type = CYAML_MAPPING;
            m.value.flags = CYAML_FLAG_OPTIONAL;
            m.value.data_size = (uint32_t)((i - first) * sizeof(char *));
            m.value.mapping.fields = dst;
            s->root_fields[nroot++] = m;
        }
    }
    memset(&s->top, 0, sizeof s->top);
    s->top.type = CYAML_MAPPING;
    s->top.flags = CYAML_FLAG_POINTER;
    s->top.data_size = (uint32_t)(NFIELDS * sizeof(char *));
    s->top.mapping.fields = s->root_fields;
}

static void schema_free(Schema *s) {
    flame_free(s->root_fields);
    flame_free(s->section_fields);
}

/* libcyaml hands string values over as C strings: a value with a NUL in it ("a\0b", "\x00")
   would arrive cut short. libyaml's events carry each scalar's length, so such values are found
   here first. The YAML syntax itself is left to libcyaml, which reports its errors. */
static int reject_nul_values(const char *yaml, size_t len, const char *origin) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        return FLAME_OK;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    int rc = FLAME_OK;
    for (bool done = false; !done && rc == FLAME_OK;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            break;
        }
        if (ev.type == YAML_SCALAR_EVENT &&
            memchr(ev.data.scalar.value, '\0', ev.data.scalar.length) != NULL) {
            char shown[160];
            rc = flame_errorf(FLAME_EINPUT,
                              "%s:%zu: the value '%s' is followed by a NUL character (\\0) and "
                              "more text; remove the NUL",
                              origin, ev.start_mark.line + 1,
                              fs_abbrev((const char *)ev.data.scalar.value, shown, sizeof shown));
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int load_common(FlameConfig *cfg, const char *yaml, size_t len, const char *origin) {
    int rc = reject_nul_values(yaml, len, origin);
    if (rc != FLAME_OK) {
        return rc;
    }
    Schema schema;
    schema_build(&schema);
    CyamlLog log = {{0}, {0}, 0};
    cyaml_config_t cc = {
        .log_fn = cyaml_capture,
        .log_ctx = &log,
        .mem_fn = cyaml_mem,
        .log_level = CYAML_LOG_ERROR,
        .flags = CYAML_CFG_DEFAULT,
    };
    char **values = NULL;
    cyaml_err_t err = cyaml_load_data((const uint8_t *)yaml, len, &cc, &schema.top,
                                      (cyaml_data_t **)&values, NULL);
    if (err != CYAML_OK) {
        const char *m = log.msg[0] ? log.msg : cyaml_strerror(err);
        if (err == CYAML_ERR_INVALID_KEY) {
            /* libcyaml: "Unexpected key: foo" */
            const char *k = strstr(m, "key: ");
            char section[128] = "";
            if (log.path[0]) {
                const char *q = strchr(log.path, '\'');
                const char *q2 = q ? strchr(q + 1, '\'') : NULL;
                if (q && q2 && q2 - q - 1 < (long)sizeof section) {
                    snprintf(section, sizeof section, " in section '%.*s'", (int)(q2 - q - 1), q + 1);
                }
            }
            rc = flame_errorf(FLAME_EINPUT,
                              "%s: unknown key '%s'%s; `flame train --help-config` lists every key",
                              origin, k ? k + 5 : m, section);
        } else if (log.path[0] && (!strncmp(m, "Expecting STRING", 16) ||
                                   !strncmp(m, "Expecting MAPPING", 17))) {
            /* a list or mapping where a value belongs, or a value where a section belongs */
            char name[128] = "?";
            const char *q = strchr(log.path, '\'');
            const char *q2 = q ? strchr(q + 1, '\'') : NULL;
            if (q && q2 && q2 - q - 1 < (long)sizeof name) {
                snprintf(name, sizeof name, "%.*s", (int)(q2 - q - 1), q + 1);
            }
            rc = flame_errorf(FLAME_EINPUT, "%s:%d: '%s' must be %s", origin, log.line, name,
                              m[10] == 'S' ? "a single value, not a list or mapping"
                                           : "a section (a mapping of keys), not a single value");
        } else if (!strncmp(m, "libyaml: ", 9)) {
            /* the YAML itself does not parse */
            rc = flame_errorf(FLAME_EINPUT, "%s: malformed YAML near line %d: %s; check the syntax",
                              origin, log.line, m + 9);
        } else {
            char where[600] = "";
            if (log.path[0]) {
                snprintf(where, sizeof where, " (%s)", log.path);
            }
            rc = flame_errorf(FLAME_EINPUT, "%s: invalid YAML for the config schema: %s%s", origin,
                              m, where);
        }
        schema_free(&schema);
        return rc;
    }
    /* typed parse of every value that was present, into a scratch copy so nothing changes on error */
    FlameConfig tmp = *cfg;
    if (values) {
        for (int i = 0; i < NFIELDS && rc == FLAME_OK; i++) {
            if (values[i]) {
                rc = config_set_value(&tmp, &g_fields[i], values[i], origin);
            }
        }
        cyaml_free(&cc, &schema.top, values, 0);
    }
    if (rc == FLAME_OK) {
        *cfg = tmp;
    }
    schema_free(&schema);
    return rc;
}

int config_load_file(FlameConfig *cfg, const char *path) {
    /* read here, from a regular file only: a FIFO or a device would block or never end */
    char *yaml = NULL;
    size_t len = 0;
    int rc = fs_read_file(path, "config file", CONFIG_FILE_MAX, &yaml, &len);
    if (rc != FLAME_OK) {
        return rc;
    }
    rc = load_common(cfg, yaml, len, path);
    free(yaml);
    return rc;
}

int config_load_string(FlameConfig *cfg, const char *yaml, size_t len, const char *origin) {
    return load_common(cfg, yaml, len, origin);
}

/* ------------------------------------------------------------------ resolution and validation */
void config_resolve(FlameConfig *c) {
    int m = c->algo == ALGO_FLAME_M, r = c->algo == ALGO_FLAME_R, sac = c->algo == ALGO_SAC;
    int ref = c->compat == COMPAT_REFERENCE;
    if (c->net.activation == ACT_AUTO) {
        c->net.activation = sac ? ACT_GELU : ACT_MISH;
    }
    if (c->flow.sample_steps == 0) {
        c->flow.sample_steps = r ? 20 : 1;
    }
    if (isnan(c->alpha.lr)) {
        c->alpha.lr = sac ? 3e-4 : 0.005;
    }
    if (c->alpha.delay == 0) {
        c->alpha.delay = sac ? 1 : 100;
    }
    if (isnan(c->alpha.target_entropy_scale)) {
        c->alpha.target_entropy_scale = sac ? 1.0 : 3.0;
    }
    if (c->entropy.estimator == ENT_AUTO) {
        c->entropy.estimator = sac ? ENT_NONE : r ? ENT_ODE : (ref ? ENT_REFERENCE3 : ENT_DECOUPLED);
    }
    if (c->entropy.steps == 0) {
        c->entropy.steps = c->entropy.estimator == ENT_ODE ? 20 : 3;
    }
    if (isnan(c->entropy.base_std)) {
        int unit = c->entropy.estimator == ENT_REFERENCE3 || c->entropy.estimator == ENT_ODE ||
                   c->entropy.estimator == ENT_BIASED1;
        c->entropy.base_std = unit ? 1.0 : c->flow.base_std;
    }
    if (c->quirks.time_convention == QUIRK_AUTO) {
        c->quirks.time_convention = ref ? QUIRK_REFERENCE : QUIRK_CONSISTENT;
    }
    if (c->quirks.softmax_temp == TEMP_AUTO) {
        c->quirks.softmax_temp = (ref && m) ? TEMP_EXP_ALPHA : TEMP_ALPHA;
    }
    if (c->quirks.td_entropy == TDENT_AUTO) {
        c->quirks.td_entropy = ref ? TDENT_MINUS : TDENT_PLUS;
    }
    if (c->quirks.critic_double_step == TRI_AUTO) {
        c->quirks.critic_double_step = (ref && m) ? TRI_YES : TRI_NO;
    }
    if (c->quirks.clip_noisy_action == TRI_AUTO) {
        c->quirks.clip_noisy_action = r ? TRI_YES : TRI_NO;
    }
    if (c->quirks.multistep_scale == QUIRK_AUTO) {
        c->quirks.multistep_scale = ref ? QUIRK_REFERENCE : QUIRK_CONSISTENT;
    }
    if (c->quirks.next_action_policy == NEXTPOL_AUTO) {
        c->quirks.next_action_policy = NEXTPOL_ONLINE;
    }
    if (c->quirks.weights_after_critic_step == TRI_AUTO) {
        c->quirks.weights_after_critic_step = (ref && m) ? TRI_YES : TRI_NO;
    }
    /* the reference code's SAC baseline (relax/network/common.py, blocks.py PolicyNet, sac.py) */
    if (c->quirks.sac_log_det == TRI_AUTO) {
        c->quirks.sac_log_det = ref ? TRI_NO : TRI_YES;
    }
    if (isnan(c->quirks.sac_log_std_max)) {
        c->quirks.sac_log_std_max = ref ? 0.5 : 2.0;
    }
    if (c->quirks.sac_alpha_init == QUIRK_AUTO) {
        c->quirks.sac_alpha_init = ref ? QUIRK_REFERENCE : QUIRK_CONSISTENT;
    }
    /* SAC (both the reference code's and the textbook one) steps the actor and the targets every
       update with a constant actor learning rate */
    if (c->update.policy_delay == 0) {
        c->update.policy_delay = sac ? 1 : 2;
    }
    if (c->update.target_delay == 0) {
        c->update.target_delay = sac ? 1 : 2;
    }
    if (isnan(c->optim.actor_lr_end)) {
        c->optim.actor_lr_end = sac ? c->optim.actor_lr : 3e-5;
    }
    if (c->env.eval_envs == 0) {
        c->env.eval_envs = c->run.eval_episodes > 0 ? c->run.eval_episodes : 1;
    }
}

int config_validate(const FlameConfig *c) {
    int sac = c->algo == ALGO_SAC, r = c->algo == ALGO_FLAME_R;
    const char *algo = config_algo_name(c->algo);

    if (c->update.batch_size > c->update.replay_size) {
        return flame_errorf(FLAME_EINPUT,
                            "update.batch_size (%d) exceeds update.replay_size (%lld); raise "
                            "update.replay_size or lower update.batch_size",
                            c->update.batch_size, (long long)c->update.replay_size);
    }
    if (c->run.start_steps < c->update.batch_size) {
        return flame_errorf(FLAME_EINPUT,
                            "run.start_steps (%lld) is smaller than update.batch_size (%d): the first "
                            "update needs a full batch in the buffer; raise run.start_steps",
                            (long long)c->run.start_steps, c->update.batch_size);
    }
    if (c->flow.t_min >= c->flow.t_max || c->flow.t_min <= 0 || c->flow.t_max >= 1) {
        return flame_errorf(FLAME_EINPUT,
                            "flow.t_min (%g) and flow.t_max (%g) must satisfy 0 < t_min < t_max < 1",
                            c->flow.t_min, c->flow.t_max);
    }
    if (c->optim.actor_lr_decay_end < c->optim.actor_lr_decay_begin) {
        return flame_errorf(FLAME_EINPUT,
                            "optim.actor_lr_decay_end (%lld) is before optim.actor_lr_decay_begin "
                            "(%lld); swap them",
                            (long long)c->optim.actor_lr_decay_end,
                            (long long)c->optim.actor_lr_decay_begin);
    }
    if (c->net.time_embed_dim % 2) {
        return flame_errorf(FLAME_EINPUT,
                            "net.time_embed_dim (%d) must be even (half sines, half cosines)",
                            c->net.time_embed_dim);
    }
    int est = c->entropy.estimator;
    if (sac && est != ENT_NONE) {
        return flame_errorf(FLAME_EINPUT,
                            "entropy.estimator '%s' does not apply to algo sac (its log-probability "
                            "is exact); use entropy.estimator=none or auto",
                            config_enum_name("entropy.estimator", est));
    }
    if (!sac && est == ENT_NONE) {
        return flame_errorf(FLAME_EINPUT,
                            "algo %s needs an entropy estimator; set entropy.estimator to auto, "
                            "reference3, decoupled, ode, biased1 or exact",
                            algo);
    }
    if (r && est != ENT_ODE) {
        return flame_errorf(FLAME_EINPUT,
                            "algo flame-r supports only entropy.estimator=ode (its policy is a "
                            "multi-step rectified flow); got '%s'",
                            config_enum_name("entropy.estimator", est));
    }
    if (c->algo == ALGO_FLAME_M && est == ENT_ODE) {
        return flame_errorf(FLAME_EINPUT,
                            "entropy.estimator=ode is FLAME-R's estimator; for flame-m use "
                            "reference3, decoupled, biased1 or exact");
    }
    if (c->net.activation == ACT_IDENTITY) {
        return flame_errorf(FLAME_EINPUT,
                            "net.activation=identity makes the networks linear; use mish, relu "
                            "or gelu");
    }
    if (c->backend.type == BACKEND_CUDA) {
#ifndef FLAME_HAVE_CUDA
        return flame_errorf(FLAME_EINPUT,
                            "backend.type=cuda but this flame was built without CUDA; rebuild "
                            "with nvcc installed or use --backend cpu");
#endif
    }
    return FLAME_OK;
}

/* ------------------------------------------------------------------ dump, equality, help */
static void fmt_double(double v, char *buf, size_t n) {
    if (isnan(v)) {
        snprintf(buf, n, "auto");
        return;
    }
    /* shortest representation that reads back to the same double */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    /* keep it a YAML float (a bare "3" is fine for our parser, but be explicit) */
}

static void fmt_value(const FlameConfig *cfg, const ConfigField *f, char *buf, size_t n) {
    const char *base = (const char *)cfg + f->offset;
    switch (f->kind) {
        case CFG_INT:
            snprintf(buf, n, "%d", *(const int *)base);
            break;
        case CFG_I64:
            snprintf(buf, n, "%lld", (long long)*(const int64_t *)base);
            break;
        case CFG_FLOAT:
        case CFG_AFLOAT:
            fmt_double(*(const double *)base, buf, n);
            break;
        case CFG_BOOL:
            snprintf(buf, n, "%s", *(const bool *)base ? "true" : "false");
            break;
        case CFG_ENUM:
            snprintf(buf, n, "%s", f->enum_names[*(const int *)base]);
            break;
        case CFG_STR: {
            /* double-quoted YAML scalar with escapes */
            size_t j = 0;
            buf[j++] = '"';
            for (const char *p = base; *p && j + 6 < n; p++) {
                unsigned char ch = (unsigned char)*p;
                if (ch == '"' || ch == '\\') {
                    buf[j++] = '\\';
                    buf[j++] = (char)ch;
                } else if (ch < 0x20) {
                    j += (size_t)snprintf(buf + j, n - j, "\\x%02x", ch);
                } else {
                    buf[j++] = (char)ch;
                }
            }
            buf[j++] = '"';
            buf[j] = '\0';
            break;
        }
    }
}

char *config_to_yaml(const FlameConfig *cfg) {
    fields_init();
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    FLAME_CHECK(out != NULL, "out of memory");
    out[0] = '\0';
    const char *cur = NULL;
    for (int i = 0; i < NFIELDS; i++) {
        const ConfigField *f = &g_fields[i];
        char val[FLAME_CFG_STR * 4 + 8];
        fmt_value(cfg, f, val, sizeof val);
        char line[FLAME_CFG_STR * 4 + 256];
        if (f->section[0] && (!cur || strcmp(cur, f->section))) {
            len += (size_t)snprintf(out + len, cap - len, "%s:\n", f->section);
            cur = f->section;
        }
        int n = snprintf(line, sizeof line, "%s%s: %s\n", f->section[0] ? "  " : "", f->name, val);
        if (len + (size_t)n + 1 > cap) {
            cap = 2 * cap + (size_t)n;
            out = realloc(out, cap);
            FLAME_CHECK(out != NULL, "out of memory");
        }
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    return out;
}

bool config_equal(const FlameConfig *a, const FlameConfig *b) {
    fields_init();
    for (int i = 0; i < NFIELDS; i++) {
        const ConfigField *f = &g_fields[i];
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        switch (f->kind) {
            case CFG_INT:
            case CFG_ENUM:
                if (*(const int *)pa != *(const int *)pb) {
                    return false;
                }
                break;
            case CFG_I64:
                if (*(const int64_t *)pa != *(const int64_t *)pb) {
                    return false;
                }
                break;
            case CFG_FLOAT:
            case CFG_AFLOAT: {
                double x = *(const double *)pa, y = *(const double *)pb;
                if (!(x == y || (isnan(x) && isnan(y)))) {
                    return false;
                }
                break;
            }
            case CFG_BOOL:
                if (*(const bool *)pa != *(const bool *)pb) {
                    return false;
                }
                break;
            case CFG_STR:
                if (strcmp(pa, pb)) {
                    return false;
                }
                break;
        }
    }
    return true;
}

void config_print_help(FILE *f) {
    fields_init();
    fprintf(f, "Config keys (YAML: one mapping per section; --set section.key=value):\n");
    for (int i = 0; i < NFIELDS; i++) {
        const ConfigField *x = &g_fields[i];
        char range[320];
        range_text(x, range, sizeof range);
        fprintf(f, "  %-34s %s\n  %-34s   default %s; %s\n", x->key, x->help, "",
                x->def[0] ? x->def : "\"\"", range);
    }
}

const char *config_enum_name(const char *key, int value) {
    const ConfigField *f = config_find_field(key);
    if (!f || f->kind != CFG_ENUM) {
        return "?";
    }
    for (int i = 0; f->enum_names[i]; i++) {
        if (i == value) {
            return f->enum_names[i];
        }
    }
    return "?";
}

const char *config_algo_name(int algo) {
    return config_enum_name("algo", algo);
}
