/*
 * progress.h: the progress display of long work (training): one line redrawn in place on a
 * terminal, plain periodic lines otherwise, at most one every `every_s` seconds, and notes (e.g.
 * evaluation results) printed between them without breaking the redrawn line.
 *
 * Rates (steps/s, updates/s) are measured over the window since the previous line, because phases
 * run at very different speeds (the warm-up steps envs only); a window shorter than 0.5 s (the
 * forced line at the end) uses the averages since progress_init instead.
 *
 * The ETA is the time to the last step:
 *   after the warm-up  the steps left at the rate of the update phase: env steps per second since
 *                      it began in this session (progress_updates_begin, or else the first sample
 *                      past the warm-up; evaluations and checkpoints included); during its first
 *                      second the modelled rate (the window's without a model);
 *   in the warm-up     the warm-up steps left at the window's rate, plus the update phase's
 *                      steps at the modelled rate given to progress_init (the warm-up only steps
 *                      envs, so its speed says nothing about the rest); unknown ("-") without a
 *                      model.
 * Durations print as h:mm:ss (hours unbounded).
 *
 * Line formats (what scripts and tests read); "-" stands for a value not known yet:
 *   terminal: "\r[<label>] step S/E[ warm-up] | T | ETA [~]T | X steps/s | Y upd/s | return R |
 *              eval V | critic C | alpha A | entropy H\033[K" (one line, cut to the terminal's
 *              width; "~": from the model)
 *   plain:    "step S/E[ warm-up] elapsed T steps_per_s X updates_per_s Y train_return R
 *              last_eval V critic_loss C alpha A entropy H eta T"
 * T: elapsed time of the run (earlier sessions included); R: mean return of the recent training
 * episodes; V: mean return of the last evaluation; C, A, H: means over the updates since the
 * previous line (the last known values when none ran in between).
 *
 * defines: Progress ProgressSample progress_init progress_updates_begin progress_update
 *          progress_note progress_end progress_hms
 */
#ifndef FLAME_PROGRESS_H
#define FLAME_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the display shows, sampled by the caller. */
typedef struct {
    double now;          /* seconds on the caller's monotonic clock (host_now) */
    int64_t steps;       /* env steps so far */
    int64_t end_steps;   /* env steps at the end of the run */
    int64_t warmup_end;  /* env steps at the end of the warm-up (before it: warm-up) */
    int64_t updates;     /* gradient updates so far */
    double elapsed;      /* seconds of the run so far (earlier sessions included) */
    double eval_return;  /* mean return of the last evaluation; NaN when none yet */
    double train_return; /* mean return of the recent training episodes; NaN when none yet */
    double critic_loss, alpha, entropy; /* NaN before the first update */
} ProgressSample;

typedef struct {
    FILE *out;
    bool tty;          /* redraw one line ("\r") instead of printing lines */
    const char *label; /* e.g. the env id (terminal lines) */
    double every_s;    /* minimum seconds between lines */
    double model_sps;  /* modelled env steps per second of the update phase (NaN: none) */
    int width;         /* terminal columns (0: unknown, lines are not cut) */
    bool open_line;    /* a redrawn line is on screen without its newline */
    /* the previous line and the start: times and counters */
    double last_t, start_t;
    int64_t last_steps, last_updates, start_steps, start_updates;
    /* the first sample past the warm-up in this session (upd_t < 0: not yet) */
    double upd_t;
    int64_t upd_steps;
} Progress;

/* Starts the display at `s` (the window and the averages begin there). model_sps: the update
   phase's modelled env steps per second for the ETA in the warm-up (NaN: none). */
void progress_init(Progress *p, FILE *out, bool tty, const char *label, double every_s,
                   double model_sps, const ProgressSample *s);

/* Marks the start of the update phase in this session (the first call counts). */
void progress_updates_begin(Progress *p, double now, int64_t steps);

/* Prints a line when every_s seconds have passed since the previous one, or always with force.
   Returns whether it printed. */
bool progress_update(Progress *p, const ProgressSample *s, bool force);

/* Prints one line of text (printf-style, newline added) between progress lines. */
void progress_note(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ends a redrawn line with its newline (nothing when no line is open). */
void progress_end(Progress *p);

/* `seconds` as h:mm:ss ("0:00:07", "72:03:10"); "-" when negative or not finite. */
const char *progress_hms(double seconds, char *buf, size_t len);

#endif
