/* progress.c: the progress display (see include/flame/progress.h). */
#include "flame/progress.h"

#include <math.h>
#include <stdarg.h>

#include "flame/proc.h"

/* a closed stdout pipe stops the printing, not the run (proc.h) */
static void progress_flush(Progress *p) {
    if (p->out == stdout) {
        proc_flush_stdout();
    } else {
        fflush(p->out);
    }
}

void progress_init(Progress *p, FILE *out, bool tty, const char *label, double every_s,
                   const ProgressSample *s) {
    p->out = out;
    p->tty = tty;
    p->label = label;
    p->every_s = every_s;
    p->open_line = false;
    p->last_t = p->start_t = s->now;
    p->last_steps = p->start_steps = s->steps;
    p->last_updates = p->start_updates = s->updates;
}

void progress_update(Progress *p, const ProgressSample *s, bool force) {
    if (!force && s->now - p->last_t < p->every_s) {
        return;
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
    double eta = sps > 0 && s->end_steps > s->steps ? (double)(s->end_steps - s->steps) / sps : 0;
    char ev[32] = "-";
    if (!isnan(s->eval_return)) {
        snprintf(ev, sizeof ev, "%.1f", s->eval_return);
    }
    const char *phase = s->warmup ? " warm-up" : "";
    if (p->tty) {
        fprintf(p->out,
                "\r[%s] step %lld/%lld%s | %.0f steps/s | %.1f updates/s | eval %s | ETA %.0fs   ",
                p->label, (long long)s->steps, (long long)s->end_steps, phase, sps, ups, ev, eta);
        p->open_line = true;
    } else {
        fprintf(p->out,
                "step %lld/%lld%s steps_per_s %.0f updates_per_s %.1f last_eval %s eta_s %.0f\n",
                (long long)s->steps, (long long)s->end_steps, phase, sps, ups, ev, eta);
    }
    progress_flush(p);
    p->last_t = s->now;
    p->last_steps = s->steps;
    p->last_updates = s->updates;
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
