/*
 * test_config.c: the config parser's numbers and strings, and config files.
 *
 * Integers parse exactly (no detour through a double: 2^53 + 1 and 9.2e18 - 1 stay themselves,
 * 1e18 is 10^18, 1_000 is 1000) or are rejected (1.5, 0x10, 1e-3, overflow); every key's
 * documented range is enforced at its exact bounds, and the range text states the bounds that
 * are enforced; junk after a number is rejected whatever the number's length (also after 130
 * zeros); a YAML string with a NUL in it is rejected, not cut short; a config file must be a
 * regular file (a FIFO is refused at once, never read); the deepest network the documented range
 * allows can be built.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/agent.h"
#include "flame/config.h"
#include "flame_test.h"

static char g_dir[] = "/tmp/flame_test_config_XXXXXX";

/* config_set on a fresh default config; *out receives the field's int64 value */
static int set_i64(const char *assignment, int64_t *out) {
    FlameConfig c;
    config_defaults(&c);
    int rc = config_set(&c, assignment);
    *out = c.run.seed;
    return rc;
}

FLAME_TEST(test_integers_are_exact) {
    struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"1e18", INT64_C(1000000000000000000)},
        {"1_000_000_000_000_000", INT64_C(1000000000000000)},
        {"10_000_000_000_000_000", INT64_C(10000000000000000)},
        {"9007199254740993", INT64_C(9007199254740993)}, /* 2^53 + 1: not a double */
        {"9199999999999999999", INT64_C(9199999999999999999)},
        {"9200000000000000000", INT64_C(9200000000000000000)}, /* the documented maximum */
        {"9.2e18", INT64_C(9200000000000000000)},
        {"2.5e3", 2500},
        {"1.000e3", 1000},
        {"+7", 7},
        {"-0", 0},
        {"0", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char a[128];
        snprintf(a, sizeof a, "run.seed=%s", ok[i].text);
        int64_t got = -1;
        int rc = set_i64(a, &got);
        EXPECT_MSG(rc == FLAME_OK && got == ok[i].want, "%s: rc %d, stored %" PRId64 ", want %" PRId64
                                                        " (%s)",
                   a, rc, got, ok[i].want, flame_last_error());
    }
    const char *bad[] = {
        "9200000000000000001", /* one above the documented maximum */
        "9.2000000000000000001e18",
        "18446744073709551616",
        "99999999999999999999999999",
        "1e19",
        "-1",
        "1.5",
        "1e-3",
        "0x10",
        "1_",
        "_1",
        "1__0",
        "1 ",
        " 1",
        "",
        "1e",
        "e5",
        ".",
        "nan",
        "inf",
        "12abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char a[128];
        snprintf(a, sizeof a, "run.seed=%s", bad[i]);
        int64_t got;
        int rc = set_i64(a, &got);
        EXPECT_MSG(rc == FLAME_EINPUT, "'%s' accepted (stored %" PRId64 ")", a, got);
        EXPECT_MSG(rc != FLAME_EINPUT || strstr(flame_last_error(), "run.seed") != NULL,
                   "message names the key: %s", flame_last_error());
    }
    /* the exact parser itself: the int64 extremes */
    int64_t v = 0;
    EXPECT(config_parse_integer("-9223372036854775808", &v) && v == INT64_MIN);
    EXPECT(config_parse_integer("9223372036854775807", &v) && v == INT64_MAX);
    EXPECT(!config_parse_integer("9223372036854775808", &v));
    EXPECT(!config_parse_integer("-9223372036854775809", &v));
    EXPECT(config_parse_integer("0.0000000000000000000000000000000001e34", &v) && v == 1);
    EXPECT(config_parse_integer("0e999999999", &v) && v == 0);
    EXPECT(!config_parse_integer("1e999999999", &v));
}

/* every key of an integer or number kind: its bounds are accepted, one step past them is not, and
   the range in the message shows exactly those bounds */
FLAME_TEST(test_every_range_at_its_bounds) {
    int n = 0;
    const ConfigField *fields = config_fields(&n);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const ConfigField *f = &fields[i];
        if (f->kind != CFG_INT && f->kind != CFG_I64 && f->kind != CFG_FLOAT &&
            f->kind != CFG_AFLOAT) {
            continue;
        }
        bool integer = f->kind == CFG_INT || f->kind == CFG_I64;
        char lo[64], hi[64], below[64], above[64];
        if (integer) {
            snprintf(lo, sizeof lo, "%" PRId64, (int64_t)f->lo);
            snprintf(hi, sizeof hi, "%" PRId64, (int64_t)f->hi);
            snprintf(below, sizeof below, "%" PRId64, (int64_t)f->lo - 1);
            snprintf(above, sizeof above, "%" PRId64, (int64_t)f->hi + 1);
        } else {
            snprintf(lo, sizeof lo, "%.17g", f->lo);
            snprintf(hi, sizeof hi, "%.17g", f->hi);
            snprintf(below, sizeof below, "%.17g", nextafter(f->lo, -INFINITY));
            snprintf(above, sizeof above, "%.17g", nextafter(f->hi, INFINITY));
        }
        FlameConfig c;
        config_defaults(&c);
        EXPECT_MSG(config_set_value(&c, f, lo, "test") == FLAME_OK, "%s = %s (its minimum): %s",
                   f->key, lo, flame_last_error());
        EXPECT_MSG(config_set_value(&c, f, hi, "test") == FLAME_OK, "%s = %s (its maximum): %s",
                   f->key, hi, flame_last_error());
        EXPECT_MSG(config_set_value(&c, f, below, "test") == FLAME_EINPUT, "%s = %s accepted",
                   f->key, below);
        EXPECT_MSG(config_set_value(&c, f, above, "test") == FLAME_EINPUT, "%s = %s accepted",
                   f->key, above);
        /* the message's range reads back to the enforced bounds */
        const char *m = strchr(flame_last_error(), '[');
        double mlo = 0, mhi = 0;
        EXPECT_MSG(m && sscanf(m, "[%lf, %lf]", &mlo, &mhi) == 2 && mlo == f->lo && mhi == f->hi,
                   "%s: the message states the range inexactly: %s", f->key, flame_last_error());
        checked++;
    }
    EXPECT(checked > 40);
}

/* a number followed by junk is rejected however long the number is (no fixed-size copy cuts the
   junk off), and a long number without junk is read exactly */
FLAME_TEST(test_trailing_junk_any_length) {
    for (int zeros = 0; zeros <= 4096; zeros = zeros ? zeros * 2 : 1) {
        size_t n = (size_t)zeros + 64;
        char *a = malloc(n), *b = malloc(n);
        snprintf(a, n, "flow.base_std=0.5");
        snprintf(b, n, "run.seed=5");
        for (int k = 0; k < zeros; k++) {
            strcat(a, "0");
        }
        strcat(b, ".");
        for (int k = 0; k < zeros; k++) {
            strcat(b, "0");
        }
        FlameConfig c;
        config_defaults(&c);
        EXPECT_MSG(config_set(&c, a) == FLAME_OK && c.flow.base_std == 0.5, "%d zeros: %s", zeros,
                   flame_last_error());
        EXPECT_MSG(config_set(&c, b) == FLAME_OK && c.run.seed == 5, "%d zeros: %s", zeros,
                   flame_last_error());
        strcat(a, "junk");
        strcat(b, "x");
        EXPECT_MSG(config_set(&c, a) == FLAME_EINPUT, "%d zeros then junk accepted", zeros);
        EXPECT_MSG(config_set(&c, b) == FLAME_EINPUT, "%d zeros then junk accepted (integer)",
                   zeros);
        free(a), free(b);
    }
    FlameConfig c;
    config_defaults(&c);
    EXPECT(config_set(&c, "update.gamma=0.9x") == FLAME_EINPUT);
    EXPECT(config_set(&c, "update.gamma=0x1p-1") == FLAME_EINPUT); /* hex floats are not YAML */
    EXPECT(config_set(&c, "update.gamma=1e-400") == FLAME_EINPUT); /* underflow */
    EXPECT(config_set(&c, "update.gamma=.5") == FLAME_OK && c.update.gamma == 0.5);
    EXPECT(config_set(&c, "update.gamma=1_0e-1") == FLAME_OK && c.update.gamma == 1.0);
    EXPECT(config_set(&c, "alpha.lr=auto") == FLAME_OK && isnan(c.alpha.lr));
}

/* YAML strings: a NUL inside a value is refused with the line; the rest of the file is unchanged */
FLAME_TEST(test_yaml_string_with_nul) {
    const char *cases[] = {
        "env:\n  model_xml: \"a\\0b.xml\"\n",
        "env:\n  model_xml: \"a\\x00\"\n",
        "env:\n  model_xml: \"\\u0000tail\"\n",
        "run:\n  name: \"x\\0\"\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FlameConfig c;
        config_defaults(&c);
        int rc = config_load_string(&c, cases[i], strlen(cases[i]), "nul.yaml");
        EXPECT_MSG(rc == FLAME_EINPUT, "case %zu accepted: model_xml '%s', name '%s'", i,
                   c.env.model_xml, c.run.name);
        EXPECT_MSG(rc != FLAME_EINPUT || (strstr(flame_last_error(), "nul.yaml:2") &&
                                          strstr(flame_last_error(), "NUL")),
                   "message: %s", flame_last_error());
        EXPECT(c.env.model_xml[0] == '\0' && c.run.name[0] == '\0');
    }
    /* escapes that are not NUL still work */
    FlameConfig c;
    config_defaults(&c);
    const char *ok = "run:\n  name: \"tab\\there\"\n";
    EXPECT(config_load_string(&c, ok, strlen(ok), "ok.yaml") == FLAME_OK);
    EXPECT(!strcmp(c.run.name, "tab\there"));
}

/* a config file is a regular file: a FIFO without a writer is refused at once (a read would block
   forever), /dev/null is refused (not an empty config), a directory is refused */
FLAME_TEST(test_config_file_must_be_regular) {
    char fifo[128], good[128];
    snprintf(fifo, sizeof fifo, "%s/fifo.yaml", g_dir);
    snprintf(good, sizeof good, "%s/good.yaml", g_dir);
    EXPECT(mkfifo(fifo, 0600) == 0);
    FlameConfig c;
    config_defaults(&c);
    alarm(20); /* the old code blocks here forever: fail loudly instead */
    int rc = config_load_file(&c, fifo);
    alarm(0);
    EXPECT_MSG(rc == FLAME_EINPUT && strstr(flame_last_error(), "not a regular file"), "FIFO: %s",
               flame_last_error());
    EXPECT(strstr(flame_last_error(), "FIFO") != NULL);
    rc = config_load_file(&c, "/dev/null");
    EXPECT_MSG(rc == FLAME_EINPUT && strstr(flame_last_error(), "character device"),
               "/dev/null: %s", flame_last_error());
    rc = config_load_file(&c, g_dir);
    EXPECT_MSG(rc == FLAME_EINPUT && strstr(flame_last_error(), "is a directory"), "dir: %s",
               flame_last_error());
    FILE *f = fopen(good, "w");
    fputs("run:\n  seed: 1_000_000_000_000_000_000\n", f);
    fclose(f);
    EXPECT(config_load_file(&c, good) == FLAME_OK);
    EXPECT(c.run.seed == INT64_C(1000000000000000000));
    remove(fifo);
    remove(good);
}

/* the largest documented net.layers is a network the MLP core can build (for every variant) */
FLAME_TEST(test_deepest_network_builds) {
    const ConfigField *f = config_find_field("net.layers");
    const char *algos[3] = {"flame-m", "flame-r", "sac"};
    for (int a = 0; a < 3; a++) {
        FlameConfig c;
        config_defaults(&c);
        char v[32], al[32];
        snprintf(v, sizeof v, "%" PRId64, (int64_t)f->hi);
        snprintf(al, sizeof al, "algo=%s", algos[a]);
        EXPECT(config_set(&c, al) == FLAME_OK);
        EXPECT(config_set_value(&c, f, v, "test") == FLAME_OK);
        config_resolve(&c);
        AgentLayout L;
        agent_layout_init(&L, &c, 17, 6); /* a fatal check here fails the test */
        EXPECT(L.pol_trunk.n_layers == c.net.layers + 1 && L.q.n_layers == c.net.layers + 1);
    }
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_integers_are_exact);
    RUN_TEST(test_every_range_at_its_bounds);
    RUN_TEST(test_trailing_junk_any_length);
    RUN_TEST(test_yaml_string_with_nul);
    RUN_TEST(test_config_file_must_be_regular);
    RUN_TEST(test_deepest_network_builds);
    rmdir(g_dir);
    return flame_test_report();
}
