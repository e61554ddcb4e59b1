/*
 * video.c: frames to a video (ffmpeg reading raw RGB from a pipe) or to PNG files (zlib), written
 * under a temporary name and renamed into place (see include/flame/render.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "flame/check.h"
#include "flame/render.h"

extern char **environ;

// ---------------------------------------------------------------------------- PNG

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t head[8];
    be32(head, n);
    memcpy(head + 4, type, 4);
    uLong crc = crc32(0L, head + 4, 4);
    if (n > 0) { /* zlib's crc32 with a NULL buffer returns its initial value instead */
        crc = crc32(crc, data, n);
    }
    uint8_t tail[4];
    be32(tail, (uint32_t)crc);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) &&
           fwrite(tail, 1, 4, f) == 4;
}

int png_write(const char *path, const uint8_t *rgb, int width, int height) {
    const size_t row = (size_t)width * 3, raw_n = (row + 1) * (size_t)height;
    uint8_t *raw = flame_malloc(raw_n);
    for (int y = 0; y < height; y++) { /* filter type 0 (none) on every row */
        raw[(row + 1) * (size_t)y] = 0;
        memcpy(raw + (row + 1) * (size_t)y + 1, rgb + row * (size_t)y, row);
    }
    uLongf zn = compressBound((uLong)raw_n);
    uint8_t *z = flame_malloc(zn);
    int zrc = compress2(z, &zn, raw, (uLong)raw_n, 6);
    flame_free(raw);
    if (zrc != Z_OK) {
        flame_free(z);
        return flame_errorf(FLAME_ERUNTIME, "%s: zlib cannot compress the frame", path);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        flame_free(z);
        return flame_errorf(FLAME_ERUNTIME, "cannot write %s (%s)", path, strerror(errno));
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[13];
    be32(ihdr, (uint32_t)width);
    be32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8;  /* bits per channel */
    ihdr[9] = 2;  /* RGB */
    ihdr[10] = 0; /* deflate */
    ihdr[11] = 0; /* adaptive filtering */
    ihdr[12] = 0; /* no interlace */
    int ok = fwrite(sig, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
             png_chunk(f, "IDAT", z, (uint32_t)zn) && png_chunk(f, "IEND", NULL, 0);
    ok = (fclose(f) == 0) && ok;
    flame_free(z);
    return ok ? FLAME_OK
              : flame_errorf(FLAME_ERUNTIME, "cannot write %s (%s)", path, strerror(errno));
}

// ---------------------------------------------------------------------------- writer

struct FrameWriter {
    char out[PATH_MAX], tmp[PATH_MAX + 64];
    bool video, force;
    int width, height;
    long frames;
    pid_t ffmpeg;
    int pipe_fd;
    void (*old_pipe)(int);
};

static const char *VIDEO_EXTS[] = {".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif"};

static const char *video_ext(const char *path) {
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof VIDEO_EXTS / sizeof *VIDEO_EXTS; i++) {
        if (!strcasecmp(dot, VIDEO_EXTS[i])) {
            return dot;
        }
    }
    return NULL;
}

/* the ffmpeg on PATH, or 0 */
static bool find_ffmpeg(char *out, size_t n) {
    const char *path = getenv("PATH");
    if (!path) {
        return false;
    }
    char *copy = strdup(path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/ffmpeg", dir[0] ? dir : ".");
        found = access(out, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* a directory that holds nothing but frame_*.png (so --force never deletes other files) */
static bool is_frame_dir(const char *path, bool remove_frames) {
    DIR *d = opendir(path);
    if (!d) {
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..")) {
            continue;
        }
        size_t len = strlen(n);
        bool frame = !strncmp(n, "frame_", 6) && len > 4 && !strcmp(n + len - 4, ".png");
        if (!frame) {
            ok = false;
        } else if (remove_frames) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", path, n);
            remove(p);
        }
    }
    closedir(d);
    return ok;
}

static void parent_dir(const char *path, char *dir, size_t n) {
    snprintf(dir, n, "%s", path);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        dir[--len] = '\0';
    }
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, n, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
}

static int check_output(FrameWriter *w) {
    char dir[PATH_MAX];
    parent_dir(w->out, dir, sizeof dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return flame_errorf(FLAME_EINPUT,
                            "--out %s: the directory '%s' does not exist; create it "
                            "first",
                            w->out, dir);
    }
    if (access(dir, W_OK) != 0) {
        return flame_errorf(FLAME_EINPUT, "--out %s: '%s' is not writable; choose another place",
                            w->out, dir);
    }
    if (lstat(w->out, &st) == 0) {
        if (!w->force) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s already exists; pass --force to replace "
                                "it",
                                w->out);
        }
        if (w->video && S_ISDIR(st.st_mode)) {
            return flame_errorf(FLAME_EINPUT, "--out %s is a directory; name a video file", w->out);
        }
        if (!w->video && (!S_ISDIR(st.st_mode) || !is_frame_dir(w->out, false))) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s holds other files than frame_*.png; "
                                "--force replaces only a frame directory",
                                w->out);
        }
    }
    return FLAME_OK;
}

int frame_writer_open(const char *out, int width, int height, int fps, bool force,
                      FrameWriter **wp) {
    *wp = NULL;
    if (!out || !out[0]) {
        return flame_errorf(FLAME_EINPUT, "--out FILE.mp4 or --out DIR is required");
    }
    FrameWriter *w = flame_calloc(1, sizeof *w);
    snprintf(w->out, sizeof w->out, "%s", out);
    size_t len = strlen(w->out);
    while (len > 1 && w->out[len - 1] == '/') {
        w->out[--len] = '\0';
    }
    const char *ext = video_ext(w->out);
    w->video = ext != NULL;
    w->force = force;
    w->width = width;
    w->height = height;
    w->pipe_fd = -1;
    char ffmpeg[PATH_MAX + 16];
    int rc = FLAME_OK;
    if (w->video && !find_ffmpeg(ffmpeg, sizeof ffmpeg)) {
        rc = flame_errorf(FLAME_EINPUT,
                          "ffmpeg is not installed (not on PATH): install it "
                          "(apt-get install ffmpeg) or write PNG frames with --out DIR");
    }
    if (rc == FLAME_OK) {
        rc = check_output(w);
    }
    if (rc != FLAME_OK) {
        flame_free(w);
        return rc;
    }
    /* a hidden temporary name beside the output, with the output's extension for ffmpeg */
    char dir[PATH_MAX];
    parent_dir(w->out, dir, sizeof dir);
    const char *base = strrchr(w->out, '/') ? strrchr(w->out, '/') + 1 : w->out;
    snprintf(w->tmp, sizeof w->tmp, "%s/.%.*s.tmp-%ld%s", dir,
             (int)(ext ? ext - base : (long)strlen(base)), base, (long)getpid(), ext ? ext : "");
    if (!w->video) {
        if (mkdir(w->tmp, 0777) != 0) {
            rc = flame_errorf(FLAME_EINPUT, "--out %s: cannot create %s (%s)", w->out, w->tmp,
                              strerror(errno));
            flame_free(w);
            return rc;
        }
        *wp = w;
        return FLAME_OK;
    }
    char size[64], rate[32];
    snprintf(size, sizeof size, "%dx%d", width, height);
    snprintf(rate, sizeof rate, "%d", fps);
    bool h264 = !strcasecmp(ext, ".mp4") || !strcasecmp(ext, ".mkv") || !strcasecmp(ext, ".mov");
    char *argv[40];
    int a = 0;
    argv[a++] = "ffmpeg";
    argv[a++] = "-nostdin", argv[a++] = "-hide_banner", argv[a++] = "-loglevel";
    argv[a++] = "error", argv[a++] = "-f", argv[a++] = "rawvideo", argv[a++] = "-pix_fmt";
    argv[a++] = "rgb24", argv[a++] = "-s", argv[a++] = size, argv[a++] = "-r", argv[a++] = rate;
    argv[a++] = "-i", argv[a++] = "-";
    if (h264) { /* what every player plays: H.264, 4:2:0 (even sizes), index at the front */
        argv[a++] = "-vf", argv[a++] = "pad=ceil(iw/2)*2:ceil(ih/2)*2";
        argv[a++] = "-c:v", argv[a++] = "libx264", argv[a++] = "-pix_fmt", argv[a++] = "yuv420p";
        argv[a++] = "-crf", argv[a++] = "18";
        if (strcasecmp(ext, ".mkv") != 0) {
            argv[a++] = "-movflags", argv[a++] = "+faststart";
        }
    }
    argv[a++] = "-y", argv[a++] = w->tmp, argv[a] = NULL;
    int fds[2];
    if (pipe(fds) != 0) {
        rc = flame_errorf(FLAME_ERUNTIME, "cannot make a pipe to ffmpeg (%s)", strerror(errno));
        flame_free(w);
        return rc;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int e = posix_spawn(&w->ffmpeg, ffmpeg, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    if (e != 0) {
        close(fds[1]);
        rc = flame_errorf(FLAME_ERUNTIME, "cannot start %s (%s)", ffmpeg, strerror(e));
        flame_free(w);
        return rc;
    }
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    w->pipe_fd = fds[1];
    w->old_pipe = signal(SIGPIPE, SIG_IGN); /* a dead ffmpeg is an error, not a signal */
    *wp = w;
    return FLAME_OK;
}

long frame_writer_count(const FrameWriter *w) {
    return w->frames;
}

int frame_writer_add(FrameWriter *w, const uint8_t *rgb) {
    if (!w->video) {
        char p[PATH_MAX + 128];
        snprintf(p, sizeof p, "%s/frame_%06ld.png", w->tmp, w->frames);
        int rc = png_write(p, rgb, w->width, w->height);
        w->frames += rc == FLAME_OK;
        return rc;
    }
    size_t n = (size_t)w->width * (size_t)w->height * 3, done = 0;
    while (done < n) {
        ssize_t k = write(w->pipe_fd, rgb + done, n - done);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return flame_errorf(FLAME_ERUNTIME,
                                "ffmpeg stopped reading frames (%s); see its "
                                "message above",
                                strerror(errno));
        }
        done += (size_t)k;
    }
    w->frames++;
    return FLAME_OK;
}

static int wait_ffmpeg(FrameWriter *w) {
    if (w->pipe_fd >= 0) {
        close(w->pipe_fd);
        w->pipe_fd = -1;
    }
    int status = 0;
    if (w->ffmpeg > 0) {
        while (waitpid(w->ffmpeg, &status, 0) < 0 && errno == EINTR) {
        }
        w->ffmpeg = 0;
        signal(SIGPIPE, w->old_pipe);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void remove_tmp(FrameWriter *w) {
    if (w->video) {
        remove(w->tmp);
    } else {
        is_frame_dir(w->tmp, true);
        rmdir(w->tmp);
    }
}

int frame_writer_close(FrameWriter *w) {
    int rc = FLAME_OK;
    if (w->video) {
        int st = wait_ffmpeg(w);
        if (st != 0) {
            rc = flame_errorf(FLAME_ERUNTIME,
                              "ffmpeg failed (exit %d) writing %s; see its message "
                              "above",
                              st, w->out);
        }
    }
    if (rc == FLAME_OK && w->frames == 0) {
        rc = flame_errorf(FLAME_ERUNTIME, "no frame was rendered; nothing written");
    }
    struct stat st;
    if (rc == FLAME_OK && lstat(w->out, &st) == 0) {
        if (!w->force) {
            rc = flame_errorf(FLAME_EINPUT, "--out %s appeared meanwhile; nothing was replaced",
                              w->out);
        } else if (!w->video) {
            is_frame_dir(w->out, true);
            if (rmdir(w->out) != 0) {
                rc =
                    flame_errorf(FLAME_ERUNTIME, "cannot replace %s (%s)", w->out, strerror(errno));
            }
        }
    }
    if (rc == FLAME_OK && rename(w->tmp, w->out) != 0) {
        rc = flame_errorf(FLAME_ERUNTIME, "cannot rename %s to %s (%s)", w->tmp, w->out,
                          strerror(errno));
    }
    if (rc != FLAME_OK) {
        remove_tmp(w);
    }
    flame_free(w);
    return rc;
}

void frame_writer_abort(FrameWriter *w) {
    if (!w) {
        return;
    }
    if (w->video && w->ffmpeg > 0) {
        kill(w->ffmpeg, SIGTERM);
        wait_ffmpeg(w);
    }
    remove_tmp(w);
    flame_free(w);
}
