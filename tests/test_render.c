/*
 * test_render.c: the offscreen renderer of `flame render` and its PNG writer.
 *
 *   - PNG: files decoded here (chunk CRCs, zlib inflate, filter bytes) give back the pixels;
 *   - a frame of a known HalfCheetah-v5 state matches tests/data/render_halfcheetah.ppm within a
 *     tolerance that admits another rasteriser's edge pixels (mean absolute difference <= 1.5
 *     levels, <= 0.8 % of the pixels off by more than 48), while a slightly different pose exceeds
 *     it;
 *   - frames are not blank (pixel variance), the track camera follows the body (the same pose 5 m
 *     further on, where the 1 m floor grid repeats, gives the same frame), the free camera does
 * not. Without any OpenGL library the renderer tests are skipped (exit 77).
 *
 * `test_render --write-reference FILE` renders the reference state to FILE (binary PPM); do it only
 * when the renderer's looks change on purpose, and look at the picture.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "flame/env.h"
#include "flame/render.h"
#include "flame_test.h"

#define W 120
#define H 90

static char tmpdir[256];
static bool gl_missing = false;

// ---------------------------------------------------------------------------- PNG

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* decodes an 8-bit RGB, non-interlaced PNG with filter type 0 rows; returns pixels or NULL */
static uint8_t *png_read(const char *path, int *w, int *h) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t *z = NULL, *px = NULL;
    size_t zn = 0;
    long at = 8;
    if (got != (size_t)n || n < 8 || memcmp(buf, sig, 8) != 0) {
        goto out;
    }
    *w = *h = 0;
    while (at + 12 <= n) {
        uint32_t len = rd32(buf + at);
        const uint8_t *type = buf + at + 4, *data = buf + at + 8;
        if (at + 12 + (long)len > n ||
            crc32(crc32(0L, type, 4), data, len) != rd32(buf + at + 8 + len)) {
            goto out;
        }
        if (!memcmp(type, "IHDR", 4)) {
            *w = (int)rd32(data), *h = (int)rd32(data + 4);
            if (data[8] != 8 || data[9] != 2 || data[12] != 0) {
                goto out;
            }
        } else if (!memcmp(type, "IDAT", 4)) {
            z = realloc(z, zn + len);
            memcpy(z + zn, data, len);
            zn += len;
        } else if (!memcmp(type, "IEND", 4)) {
            break;
        }
        at += 12 + (long)len;
    }
    uLongf raw_n = (uLongf)((size_t)*w * 3 + 1) * (uLongf)*h;
    uint8_t *raw = malloc(raw_n);
    if (*w > 0 && uncompress(raw, &raw_n, z, zn) == Z_OK &&
        raw_n == (uLongf)((size_t)*w * 3 + 1) * (uLongf)*h) {
        px = malloc((size_t)*w * *h * 3);
        for (int y = 0; y < *h; y++) {
            const uint8_t *r = raw + (size_t)y * ((size_t)*w * 3 + 1);
            if (r[0] != 0) {
                free(px);
                px = NULL;
                break;
            }
            memcpy(px + (size_t)y * *w * 3, r + 1, (size_t)*w * 3);
        }
    }
    free(raw);
out:
    free(buf);
    free(z);
    return px;
}

FLAME_TEST(test_png_roundtrip) {
    const int w = 37, h = 23;
    uint8_t *img = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) {
        img[i] = (uint8_t)((i * 131) ^ (i >> 3));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/a.png", tmpdir);
    EXPECT(png_write(path, img, w, h) == FLAME_OK);
    int rw = 0, rh = 0;
    uint8_t *back = png_read(path, &rw, &rh);
    EXPECT(back != NULL && rw == w && rh == h);
    EXPECT(back && !memcmp(back, img, (size_t)w * h * 3));
    free(back);
    /* a flipped byte breaks a CRC: the decoder above checks them, so it can fail */
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    back = png_read(path, &rw, &rh);
    EXPECT(back == NULL);
    free(back);
    snprintf(path, sizeof path, "%s/no/such/dir/a.png", tmpdir);
    EXPECT(png_write(path, img, w, h) == FLAME_ERUNTIME);
    free(img);
    snprintf(path, sizeof path, "%s/a.png", tmpdir);
    remove(path);
}

// ---------------------------------------------------------------------------- frames

typedef struct {
    mjModel *m;
    mjData *d;
    Renderer *r;
} Scene;

/* HalfCheetah-v5 at rootx = x, legs bent by `bend` */
static void cheetah_pose(Scene *s, double x, double bend) {
    mj_resetData(s->m, s->d);
    s->d->qpos[0] = x;
    s->d->qpos[2] = 0.1;
    const double legs[6] = {-0.4, 0.6, 0.3, 0.5, -0.6, -0.3};
    for (int j = 0; j < 6; j++) {
        s->d->qpos[3 + j] = bend * legs[j];
    }
    mj_forward(s->m, s->d);
}

static int scene_open(Scene *s, const char *env_id, const char *camera) {
    const EnvSpec *spec = env_spec_find(env_id);
    FLAME_CHECK(env_model_load(spec, NULL, &s->m) == FLAME_OK, "%s", flame_last_error());
    s->d = mj_makeData(s->m);
    mj_forward(s->m, s->d);
    int rc = render_create(spec, s->m, s->d, W, H, RENDER_GL_AUTO, camera, &s->r);
    if (rc != FLAME_OK) {
        printf("  render_create: %s\n", flame_last_error());
    }
    return rc;
}

static void scene_close(Scene *s) {
    render_free(s->r);
    mj_deleteData(s->d);
    mj_deleteModel(s->m);
}

typedef struct {
    double mean_abs;  /* mean |a - b| over every channel */
    double far_share; /* share of pixels with a channel off by more than 48 */
} Diff;

static Diff diff(const uint8_t *a, const uint8_t *b) {
    Diff d = {0, 0};
    for (int p = 0; p < W * H; p++) {
        int far = 0;
        for (int c = 0; c < 3; c++) {
            int e = abs((int)a[3 * p + c] - (int)b[3 * p + c]);
            d.mean_abs += e;
            far |= e > 48;
        }
        d.far_share += far;
    }
    d.mean_abs /= 3.0 * W * H;
    d.far_share /= (double)W * H;
    return d;
}

static bool within(Diff d) {
    return d.mean_abs <= 1.5 && d.far_share <= 0.008;
}

static double luminance_variance(const uint8_t *img) {
    double s = 0, s2 = 0;
    for (int p = 0; p < W * H; p++) {
        double y = 0.299 * img[3 * p] + 0.587 * img[3 * p + 1] + 0.114 * img[3 * p + 2];
        s += y, s2 += y * y;
    }
    s /= W * H;
    return s2 / (W * H) - s * s;
}

static uint8_t *ppm_read(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    int w = 0, h = 0, maxv = 0;
    uint8_t *px = NULL;
    if (fscanf(f, "P6 %d %d %d", &w, &h, &maxv) == 3 && w == W && h == H && maxv == 255 &&
        fgetc(f) != EOF) {
        px = malloc(W * H * 3);
        if (fread(px, 1, W * H * 3, f) != W * H * 3) {
            free(px);
            px = NULL;
        }
    }
    fclose(f);
    return px;
}

FLAME_TEST(test_reference_frame) {
    Scene s;
    if (scene_open(&s, "HalfCheetah-v5", NULL) != FLAME_OK) {
        gl_missing = true;
        return;
    }
    printf("  OpenGL: %s\n", render_gl_name(s.r));
    uint8_t *img = malloc(W * H * 3), *other = malloc(W * H * 3);
    cheetah_pose(&s, 0, 1);
    render_frame(s.r, s.d, img);
    double var = luminance_variance(img);
    printf("  luminance variance %.1f\n", var);
    EXPECT(var > 100); /* not blank: body, floor, grid and sky */

    char ref_path[1024];
    const char *src = getenv("FLAME_SOURCE_DIR");
    snprintf(ref_path, sizeof ref_path, "%s/tests/data/render_halfcheetah.ppm", src ? src : "..");
    uint8_t *ref = ppm_read(ref_path);
    EXPECT_MSG(ref != NULL, "cannot read %s", ref_path);
    if (ref) {
        Diff d = diff(img, ref);
        printf("  vs reference: mean |diff| %.3f levels, %.3f %% of pixels off by > 48\n",
               d.mean_abs, 100 * d.far_share);
        EXPECT(within(d));
        /* a slightly different pose is caught by the same tolerance */
        cheetah_pose(&s, 0, 0.7);
        render_frame(s.r, s.d, other);
        Diff d2 = diff(other, ref);
        printf("  another pose vs reference: %.3f levels, %.3f %%\n", d2.mean_abs,
               100 * d2.far_share);
        EXPECT(!within(d2));
        free(ref);
    }
    /* the track camera follows: 5 m further on (the grid repeats every metre) the frame is the
       same */
    cheetah_pose(&s, 5, 1);
    render_frame(s.r, s.d, other);
    Diff moved = diff(img, other);
    printf("  5 m further, track camera: %.3f levels, %.3f %%\n", moved.mean_abs,
           100 * moved.far_share);
    EXPECT(within(moved));
    scene_close(&s);

    /* the free camera stays: the body leaves its place in the frame */
    Scene f;
    EXPECT(scene_open(&f, "HalfCheetah-v5", "free") == FLAME_OK);
    cheetah_pose(&f, 0, 1);
    render_frame(f.r, f.d, img);
    cheetah_pose(&f, 5, 1);
    render_frame(f.r, f.d, other);
    Diff fd = diff(img, other);
    printf("  5 m further, free camera: %.3f levels, %.3f %%\n", fd.mean_abs, 100 * fd.far_share);
    EXPECT(fd.far_share > 0.002 && moved.far_share < 0.0005); /* the small body moved away */
    scene_close(&f);
    free(img), free(other);
}

FLAME_TEST(test_every_env_draws) {
    if (gl_missing) {
        return;
    }
    uint8_t *img = malloc(W * H * 3);
    for (int i = 0; i < env_spec_count(); i++) {
        const EnvSpec *spec = env_spec_at(i);
        Scene s;
        EXPECT(scene_open(&s, spec->id, NULL) == FLAME_OK);
        render_frame(s.r, s.d, img);
        double var = luminance_variance(img);
        EXPECT_MSG(var > 30, "%s: luminance variance %.1f (blank frame?)", spec->id, var);
        scene_close(&s);
    }
    free(img);
    /* bad cameras and sizes are input errors */
    Scene s;
    const EnvSpec *spec = env_spec_find("Reacher-v5");
    EXPECT(env_model_load(spec, NULL, &s.m) == FLAME_OK);
    s.d = mj_makeData(s.m);
    EXPECT(render_create(spec, s.m, s.d, W, H, RENDER_GL_AUTO, "side", &s.r) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "unknown --camera 'side'") != NULL);
    EXPECT(render_create(spec, s.m, s.d, W, H, RENDER_GL_AUTO, "track", &s.r) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "no track camera") != NULL);
    EXPECT(render_create(spec, s.m, s.d, 8, H, RENDER_GL_AUTO, NULL, &s.r) == FLAME_EINPUT);
    mj_deleteData(s.d);
    mj_deleteModel(s.m);
}

static int write_reference(const char *path) {
    Scene s;
    if (scene_open(&s, "HalfCheetah-v5", NULL) != FLAME_OK) {
        return 2;
    }
    uint8_t *img = malloc(W * H * 3);
    cheetah_pose(&s, 0, 1);
    render_frame(s.r, s.d, img);
    FILE *f = fopen(path, "wb");
    int ok =
        f && fprintf(f, "P6 %d %d 255\n", W, H) > 0 && fwrite(img, 1, W * H * 3, f) == W * H * 3;
    ok = f && fclose(f) == 0 && ok;
    printf("%s %s (%s)\n", ok ? "wrote" : "cannot write", path, render_gl_name(s.r));
    free(img);
    scene_close(&s);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-reference")) {
        return write_reference(argv[2]);
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/flame_render_XXXXXX");
    FLAME_CHECK(mkdtemp(tmpdir), "mkdtemp");
    RUN_TEST(test_png_roundtrip);
    RUN_TEST(test_reference_frame);
    RUN_TEST(test_every_env_draws);
    int rc = flame_test_report();
    rmdir(tmpdir);
    if (rc == 0 && gl_missing) {
        printf(
            "SKIPPED: no OpenGL library for offscreen rendering (the frame tests did not run)\n");
        return 77;
    }
    return rc;
}
