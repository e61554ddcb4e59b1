/*
 * test_fsutil.c: paths and files (src/util/fsutil.c) and the process settings (src/util/proc.c).
 *
 * Path limits are named when hit (PATH_MAX for the whole path, NAME_MAX for one name) and the
 * message keeps its end (abbreviated in the middle); a run name is one path component; mkdir -p
 * reports the topmost directory it created and that directory chain is removed again, never a
 * directory that holds something; inputs must be regular files (a FIFO never blocks, /dev/zero
 * is refused); a file written atomically is either the old one or the new one, also when the
 * write fails (file size limit); a closed stdout pipe stops the printing, not the process; a lock
 * held by another process is refused naming it, and is free again once that process is killed;
 * the memory a process may still take follows /proc/meminfo and an address-space limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flame/fsutil.h"
#include "flame/proc.h"
#include "flame_test.h"

static char g_dir[] = "/tmp/flame_test_fsutil_XXXXXX";

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *slurp(const char *p) {
    char *data = NULL;
    size_t len = 0;
    return fs_read_file(p, "file", 1 << 20, &data, &len) == FLAME_OK ? data : NULL;
}

FLAME_TEST(test_path_limits_are_named) {
    char dst[FS_PATH_MAX];
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    EXPECT(fs_printf(dst, sizeof dst, "run directory", "%s/%s", "runs", "x") == FLAME_OK);
    EXPECT(!strcmp(dst, "runs/x"));
    EXPECT(fs_printf(dst, sizeof dst, "run directory", "runs/%s", big) == FLAME_EINPUT);
    const char *m = flame_last_error();
    EXPECT_MSG(strstr(m, "PATH_MAX") && strstr(m, "5004 bytes") && strstr(m, "use a shorter path"),
               "%s", m);
    EXPECT(strlen(m) < 400); /* abbreviated, and its end (the fix) is there */

    /* one name over NAME_MAX, the whole path within PATH_MAX */
    char name300[400];
    snprintf(name300, sizeof name300, "runs/%.*s/x", 300, big);
    EXPECT(fs_check_path(name300, 0, "run directory") == FLAME_EINPUT);
    m = flame_last_error();
    EXPECT_MSG(strstr(m, "NAME_MAX") && strstr(m, "300 bytes") && strstr(m, "run directory"), "%s",
               m);
    /* the reserve: what flame appends must fit too */
    char near[FS_PATH_MAX];
    memset(near, 'b', sizeof near);
    for (int i = 100; i < FS_PATH_MAX; i += 101) {
        near[i] = '/';
    }
    near[FS_PATH_MAX - 30] = '\0';
    EXPECT(fs_check_path(near, 0, "run directory") == FLAME_OK);
    EXPECT(fs_check_path(near, 40, "run directory") == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "PATH_MAX") != NULL);
    EXPECT(fs_check_path("", 0, "--out") == FLAME_EINPUT);
    free(big);
}

FLAME_TEST(test_name_component) {
    EXPECT(fs_name_component_ok("run1"));
    EXPECT(fs_name_component_ok(".hidden"));
    EXPECT(fs_name_component_ok("a..b"));
    EXPECT(!fs_name_component_ok(""));
    EXPECT(!fs_name_component_ok("."));
    EXPECT(!fs_name_component_ok(".."));
    EXPECT(!fs_name_component_ok("../x"));
    EXPECT(!fs_name_component_ok("a/b"));
    EXPECT(!fs_name_component_ok("/abs"));
}

FLAME_TEST(test_mkdir_p_and_undo) {
    char path[512], created[FS_PATH_MAX], keep[512], file[600];
    snprintf(path, sizeof path, "%s/a/b/c", g_dir);
    EXPECT(fs_mkdir_p(path, created, sizeof created) == FLAME_OK);
    EXPECT(is_dir(path));
    char want[512];
    snprintf(want, sizeof want, "%s/a", g_dir);
    EXPECT_MSG(!strcmp(created, want), "created '%s'", created);
    /* again: nothing new */
    EXPECT(fs_mkdir_p(path, created, sizeof created) == FLAME_OK && created[0] == '\0');
    /* undo stops at a directory that holds something else */
    snprintf(keep, sizeof keep, "%s/a/b/keep", g_dir);
    EXPECT(mkdir(keep, 0755) == 0);
    fs_rmdir_created(path, want);
    EXPECT(!is_dir(path) && is_dir(keep));
    rmdir(keep);
    fs_rmdir_created(path, want);
    EXPECT(!is_dir(want));
    /* a file in the way: an error naming it, and what was created before is removed */
    snprintf(file, sizeof file, "%s/plain", g_dir);
    fclose(fopen(file, "w"));
    snprintf(path, sizeof path, "%s/plain/x/y", g_dir);
    EXPECT(fs_mkdir_p(path, created, sizeof created) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "plain (it exists and is not a directory)") != NULL);
    snprintf(path, sizeof path, "%s/plain", g_dir);
    EXPECT(access(path, F_OK) == 0 && !is_dir(path));
    remove(file);
}

FLAME_TEST(test_regular_files_only) {
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/fifo", g_dir);
    EXPECT(mkfifo(fifo, 0600) == 0);
    int fd = -1;
    alarm(20);
    EXPECT(fs_open_regular(fifo, "config file", &fd) == FLAME_EINPUT);
    alarm(0);
    EXPECT(strstr(flame_last_error(), "is a FIFO (named pipe), not a regular file") != NULL);
    EXPECT(fs_check_regular(fifo, "checkpoint") == FLAME_EINPUT);
    EXPECT(fs_open_regular("/dev/zero", "config file", &fd) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "character device") != NULL);
    EXPECT(fs_check_regular(g_dir, "checkpoint") == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "is a directory") != NULL);
    EXPECT(fs_check_regular("/nonexistent/x", "checkpoint") == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "No such file") != NULL);
    char *data;
    size_t len;
    EXPECT(fs_read_file("/dev/zero", "config file", 100, &data, &len) == FLAME_EINPUT);
    remove(fifo);
}

/* the write fails under a file size limit: the old content stays, no temporary file */
static void atomic_under_limit(void) {
    char path[512], tmp[600];
    snprintf(path, sizeof path, "%s/config.yaml", g_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    EXPECT(fs_write_atomic(path, "old\n", 4) == FLAME_OK);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    r.rlim_cur = 1000;
    setrlimit(RLIMIT_FSIZE, &r);
    char big[5000];
    memset(big, 'x', sizeof big);
    EXPECT(fs_write_atomic(path, big, sizeof big) == FLAME_ERUNTIME);
    EXPECT(strstr(flame_last_error(), "File too large") && strstr(flame_last_error(), path));
    EXPECT(fs_last_errno() == EFBIG);
    EXPECT(access(tmp, F_OK) != 0);
    char *s = slurp(path);
    EXPECT(s && !strcmp(s, "old\n"));
    free(s);
    remove(path);
}

FLAME_TEST(test_atomic_write) {
    char path[512], copy[600];
    snprintf(path, sizeof path, "%s/f.txt", g_dir);
    snprintf(copy, sizeof copy, "%s/g.txt", g_dir);
    EXPECT(fs_write_atomic(path, "hello", 5) == FLAME_OK);
    EXPECT(fs_copy_file(path, copy) == FLAME_OK);
    char *s = slurp(copy);
    EXPECT(s && !strcmp(s, "hello"));
    free(s);
    remove(path);
    remove(copy);
    pid_t pid = fork();
    if (pid == 0) {
        flame_test_failures = 0;
        atomic_under_limit();
        exit(flame_test_failures ? 1 : 0);
    }
    int status;
    waitpid(pid, &status, 0);
    EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* stdout is a pipe whose reader is gone: printing stops, the process goes on and exits 0 */
FLAME_TEST(test_closed_stdout_pipe) {
    int p[2];
    EXPECT(pipe(p) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        proc_init();
        close(p[0]); /* the reader is gone */
        dup2(p[1], STDOUT_FILENO);
        close(p[1]);
        for (int i = 0; i < 2000; i++) {
            printf("progress line %d of a long run\n", i);
            proc_flush_stdout();
        }
        _exit(proc_stdout_closed() ? 0 : 3);
    }
    close(p[0]);
    close(p[1]);
    int status;
    waitpid(pid, &status, 0);
    EXPECT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d (signal %d)",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* a second process cannot take the lock; it names the holder; SIGKILL of the holder frees it and
   the next holder learns whom the file named */
FLAME_TEST(test_lock_file) {
    char path[512];
    snprintf(path, sizeof path, "%s/.lock", g_dir);
    int ready[2];
    EXPECT(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        FsLock l;
        if (fs_lock(path, "run x", &l) != FLAME_OK) {
            _exit(1);
        }
        ssize_t w = write(ready[1], "1", 1);
        (void)w;
        pause(); /* holds the lock until killed */
        _exit(0);
    }
    char c = 0;
    EXPECT(read(ready[0], &c, 1) == 1);
    FsLock mine;
    EXPECT(fs_lock(path, "run x", &mine) == FLAME_EINPUT);
    char want[64];
    snprintf(want, sizeof want, "run x is in use by process %ld on host ", (long)pid);
    EXPECT_MSG(strstr(flame_last_error(), want) != NULL, "%s", flame_last_error());
    EXPECT(mine.fd == -1);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    EXPECT_MSG(fs_lock(path, "run x", &mine) == FLAME_OK, "%s", flame_last_error());
    EXPECT(mine.stale_pid == (long)pid && mine.stale_host[0]); /* the dead holder is named */
    char *s = slurp(path);
    char me[32];
    snprintf(me, sizeof me, "%ld ", (long)getpid());
    EXPECT(s && !strncmp(s, me, strlen(me)));
    free(s);
    fs_unlock(&mine);
    EXPECT(mine.fd == -1);
    /* released: taken again at once */
    EXPECT(fs_lock(path, "run x", &mine) == FLAME_OK);
    /* a holder that removes the file before it unlocks leaves no one to name */
    remove(path);
    fs_unlock(&mine);
    EXPECT(fs_lock(path, "run x", &mine) == FLAME_OK && mine.stale_pid == 0);
    s = slurp(path);
    EXPECT(s && !strncmp(s, me, strlen(me)));
    free(s);
    fs_unlock(&mine);
    close(ready[0]);
    close(ready[1]);
    remove(path);
}

FLAME_TEST(test_memory_available) {
    uint64_t avail = proc_memory_available();
    FILE *f = fopen("/proc/meminfo", "r");
    unsigned long long total_kb = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        sscanf(line, "MemTotal: %llu", &total_kb);
    }
    if (f) {
        fclose(f);
    }
    EXPECT(total_kb > 0);
    EXPECT_MSG(avail > 0 && avail <= (uint64_t)total_kb * 1024, "available %llu of %llu kB",
               (unsigned long long)avail, total_kb);
    /* an address-space limit 64 MiB above what is mapped now caps the answer */
    pid_t pid = fork();
    if (pid == 0) {
        unsigned long long pages = 0;
        FILE *s = fopen("/proc/self/statm", "r");
        if (!s || fscanf(s, "%llu", &pages) != 1) {
            _exit(2);
        }
        fclose(s);
        uint64_t mapped = pages * (uint64_t)sysconf(_SC_PAGESIZE);
        struct rlimit r;
        getrlimit(RLIMIT_AS, &r);
        r.rlim_cur = mapped + (64u << 20);
        if (setrlimit(RLIMIT_AS, &r) != 0) {
            _exit(3);
        }
        uint64_t a = proc_memory_available();
        _exit(a <= (64u << 20) + (1u << 20) ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    EXPECT_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "under RLIMIT_AS: status %d",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_path_limits_are_named);
    RUN_TEST(test_name_component);
    RUN_TEST(test_mkdir_p_and_undo);
    RUN_TEST(test_regular_files_only);
    RUN_TEST(test_atomic_write);
    RUN_TEST(test_closed_stdout_pipe);
    RUN_TEST(test_lock_file);
    RUN_TEST(test_memory_available);
    rmdir(g_dir);
    return flame_test_report();
}
