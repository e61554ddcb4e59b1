/* progress.c: the progress display (see include/flame/progress.h). */
#include "flame/progress.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "flame/proc.h"

/* a closed stdout pipe stops the printing, not the run (proc.h) */
static void progress_flush(Progress *p) {
    if (p->out == stdout) {
        proc_flush_stdout();
    } else {
        fflush(p->out);
    }
}

/* columns of the terminal `out` writes to (0 when it is not one or does not say) */
static int terminal_width(FILE *out) {
    struct winsize ws;
    int fd = fileno(out);
    if (fd < 0 || !isatty(fd) || ioctl(fd, TIOCGWINSZ, &ws) != 0) {
        return 0;
    }
    return ws.ws_col;
}

const char *progress_hms(double seconds, char *buf, size_t len) {
    if (!isfinite(seconds) || seconds < 0 || seconds > 1e12) {
        snprintf(buf, len, "-");
        return buf;
    }
    long long s = llround(seconds);
    snprintf(buf, len, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    return buf;
}

void progress_init(Progress *p, FILE *out, bool tty, const char *label, double every_s,
                   double model_sps, const ProgressSample *s) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = tty;
    p->label = label;
    p->every_s = every_s;
    p->model_sps = model_sps;
    p->width = tty ? terminal_width(out) : 0;
    p->last_t = p->start_t = s->now;
    p->last_steps = p->start_steps = s->steps;
    p->last_updates = p->start_updates = s->updates;
    p->upd_t = -1;
}

void progress_updates_begin(Progress *p, double now, int64_t steps) {
    if (p->upd_t < 0) {
        p->upd_t = now;
        p->upd_steps = steps;
    }
}

/* seconds to the end of the run (see the header); NaN when unknown; *modelled: from the model */
static double eta_seconds(const Progress *p, const ProgressSample *s, double window_sps,
                          bool *modelled) {
    bool model = p->model_sps > 0;
    *modelled = false;
    if (s->steps >= s->end_steps) {
        return 0;
    }
    if (s->steps < s->warmup_end) {
        *modelled = model;
        double rest = model ? (double)(s->end_steps - s->warmup_end) / p->model_sps : NAN;
        return window_sps > 0 ? (double)(s->warmup_end - s->steps) / window_sps + rest : NAN;
    }
    double du = s->now - p->upd_t, rate = window_sps;
    if (du >= 1.0) {
        rate = (double)(s->steps - p->upd_steps) / du;
    } else if (model) {
        rate = p->model_sps;
        *modelled = true;
    }
    return rate > 0 ? (double)(s->end_steps - s->steps) / rate : NAN;
}

/* "%.<prec>g" of a value, or "-" for NaN */
static const char *num(double v, const char *fmt, char *buf, size_t len) {
    if (isnan(v)) {
        snprintf(buf, len, "-");
    } else {
        snprintf(buf, len, fmt, v);
    }
    return buf;
}

bool progress_update(Progress *p, const ProgressSample *s, bool force) {
    if (s->steps >= s->warmup_end) {
        progress_updates_begin(p, s->now, s->steps);
    }
    if (!force && s->now - p->last_t < p->every_s) {
        return false;
    }
    /* rates over the window since the previous line; the whole session's for a short window */
    double dt = s->now - p->last_t;
    int64_t dsteps = s->steps - p->last_steps, dupd = s->updates - p->last_updates;
    if (dt < 0.5) {
        dt = s->now - p->start_t;
        dsteps = s->steps - p->start_steps;
        dupd = s->updates - p->start_updates;
    }
    double sps = dt > 0 ? (double)dsteps / dt : 0;
    double ups = dt > 0 ? (double)dupd / dt : 0;
    bool warmup = s->steps < s->warmup_end, modelled;
    char eta[32], el[32], ev[32], tr[32], cl[32], al[32], en[32];
    progress_hms(eta_seconds(p, s, sps, &modelled), eta, sizeof eta);
    progress_hms(s->elapsed, el, sizeof el);
    num(s->eval_return, "%.1f", ev, sizeof ev);
    num(s->train_return, "%.1f", tr, sizeof tr);
    num(s->critic_loss, "%.4g", cl, sizeof cl);
    num(s->alpha, "%.4g", al, sizeof al);
    num(s->entropy, "%.4g", en, sizeof en);
    const char *phase = warmup ? " warm-up" : "";
    if (p->tty) {
        char line[512];
        int n =
            snprintf(line, sizeof line,
                     "[%s] step %lld/%lld%s | %s | ETA %s%s | %.0f steps/s | %.1f upd/s | "
                     "return %s | eval %s | critic %s | alpha %s | entropy %s",
                     p->label, (long long)s->steps, (long long)s->end_steps, phase, el,
                     modelled && strcmp(eta, "-") ? "~" : "", eta, sps, ups, tr, ev, cl, al, en);
        /* a line wider than the terminal would wrap and every redraw would add a line: cut
           (the losses go first) */
        if (p->width > 1 && n > p->width - 1) {
            line[p->width - 1] = '\0';
        }
        fprintf(p->out, "\r%s\033[K", line);
        p->open_line = true;
    } else {
        fprintf(p->out,
                "step %lld/%lld%s elapsed %s steps_per_s %.0f updates_per_s %.1f train_return %s "
                "last_eval %s critic_loss %s alpha %s entropy %s eta %s\n",
                (long long)s->steps, (long long)s->end_steps, phase, el, sps, ups, tr, ev, cl, al,
                en, eta);
    }
    progress_flush(p);
    p->last_t = s->now;
    p->last_steps = s->steps;
    p->last_updates = s->updates;
    return true;
}

void progress_note(Progress *p, const char *fmt, ...) {
    progress_end(p);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    progress_flush(p);
}

void progress_end(Progress *p) {
    if (p->open_line) {
        fputc('\n', p->out);
        progress_flush(p);
        p->open_line = false;
    }
}
