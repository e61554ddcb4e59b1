/* cmd_pending.c: commands whose implementation is not in this build yet. */
#include "flame/check.h"
#include "flame/cli.h"

