/*
 * progress.h: the progress display of long work (training): one line redrawn in place on a
 * terminal, plain periodic lines otherwise, at most one every `every_s` seconds, and notes (e.g.
 * evaluation results) printed between them without breaking the redrawn line.
 *
 * Rates (steps/s, updates/s) are measured over the window since the previous line, because phases
 * run at very different speeds (the warm-up steps envs only); a window shorter than 0.5 s (the
 * forced line at the end) uses the averages since progress_init instead. The ETA divides the steps
 * left by the window's step rate.
 *
 * Line formats (what scripts and tests read):
 *   terminal: "\r[<label>] step S/E[ warm-up] | X steps/s | Y updates/s | eval R | ETA Ts   "
 *   plain:    "step S/E[ warm-up] steps_per_s X updates_per_s Y last_eval R eta_s T"
 * R is "-" before the first evaluation.
 *
 * defines: Progress ProgressSample progress_init progress_update progress_note progress_end
 */
#ifndef FLAME_PROGRESS_H
#define FLAME_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* What the display shows, sampled by the caller. */
typedef struct {
    double now;          /* seconds on the caller's monotonic clock (host_now) */
    int64_t steps;       /* env steps so far */
    int64_t end_steps;   /* env steps at the end of the run */
    bool warmup;         /* still in the warm-up */
    int64_t updates;     /* gradient updates so far */
    double eval_return;  /* mean return of the last evaluation; NaN when none yet */
} ProgressSample;

typedef struct {
    FILE *out;
    bool tty;          /* redraw one line ("\r") instead of printing lines */
    const char *label; /* e.g. the env id (terminal lines) */
    double every_s;    /* minimum seconds between lines */
    bool open_line;    /* a redrawn line is on screen without its newline */
    /* the previous line and the start: times and counters */
    double last_t, start_t;
    int64_t last_steps, last_updates, start_steps, start_updates;
} Progress;

/* Starts the display at `s` (the window and the averages begin there). */
void progress_init(Progress *p, FILE *out, bool tty, const char *label, double every_s,
                   const ProgressSample *s);

/* Prints a line when every_s seconds have passed since the previous one, or always with force. */
void progress_update(Progress *p, const ProgressSample *s, bool force);

/* Prints one line of text (printf-style, newline added) between progress lines. */
void progress_note(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends a redrawn line with its newline (nothing when no line is open). */
void progress_end(Progress *p);

#endif
