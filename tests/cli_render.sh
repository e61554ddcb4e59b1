#!/usr/bin/env bash
# cli_render.sh: `flame render` end to end. Frame counts (reset frame + one per step) of PNG
# directories and of videos (ffprobe), frame sizes, the episodes that `flame eval --envs 1` and
# `flame rollout --envs 1` run for the same policy and seed, and bad input: missing ffmpeg or
# OpenGL (exit 2 naming the package), existing outputs, bad options. Skips (77) without any OpenGL
# library; the video checks need ffmpeg and ffprobe.
set -u
: "${FLAME_BIN:?FLAME_BIN must point to the flame binary}"
: "${FLAME_DATASET_TEST_BIN:?FLAME_DATASET_TEST_BIN must point to test_dataset}"
work=$(mktemp -d /tmp/flame_render_cli_XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
passed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failures=$((failures + 1)); echo "FAIL $1" >&2; }
R=("$FLAME_BIN" render)
small=(--width 64 --height 48)

# OpenGL present at all? (the first run tells)
if ! "${R[@]}" --policy random --env InvertedPendulum-v5 --out "$work/probe" "${small[@]}" \
    > "$work/log" 2>&1; then
    if grep -q "no OpenGL" "$work/log"; then
        cat "$work/log"
        echo "SKIPPED: no OpenGL library for offscreen rendering"
        exit 77
    fi
    cat "$work/log" >&2
    exit 1
fi

# PNG frames: one per step plus the reset frame, of the asked size
"${R[@]}" --policy random --env Hopper-v5 --episodes 2 --seed 4 --out "$work/frames" "${small[@]}" \
    > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
lengths=$(sed -n 's/^episode [0-9]*: return .*, length \([0-9]*\)$/\1/p' "$work/log" | tr '\n' ' ')
want=0
for l in $lengths; do want=$((want + l + 1)); done
got=$(find "$work/frames" -name 'frame_*.png' | wc -l)
if [ -n "$lengths" ] && [ "$got" -eq "$want" ] && grep -q "($want frames)" "$work/log"; then
    ok "PNG frames: $got = episode lengths ($lengths) + 1 each"
else
    fail "PNG frames: $got files, lengths '$lengths'"; cat "$work/log" >&2
fi
size=$(od -An -tu1 -j16 -N8 "$work/frames/frame_000000.png" | tr -s ' ')
[ "$size" = " 0 0 0 64 0 0 0 48" ] && ok "frames are 64 x 48" || fail "PNG header size '$size'"
[ -z "$(ls -A "$work" | grep '^\.')" ] && ok "no temporary files left" ||
    fail "left: $(ls -A "$work")"

# one engine: render (one env), `flame eval --envs 1` and `flame rollout --envs 1` run the same
# episodes for the same policy and seed (returns to 2 decimals as eval prints them, lengths)
render_episodes() { # LOG -> "returns: ...|lengths: ..."
    local r l
    r=$(sed -n 's/^episode [0-9]*: return \([-0-9.]*\), length [0-9]*$/ \1/p' "$1" | tr -d '\n')
    l=$(sed -n 's/^episode [0-9]*: return [-0-9.]*, length \([0-9]*\)$/ \1/p' "$1" | tr -d '\n')
    echo "returns:$r|lengths:$l"
}
listed_episodes() { # OUTPUT -> "returns: ...|lengths: ..."
    echo "$(grep '^returns:' <<< "$1")|$(grep '^lengths:' <<< "$1")"
}
"$FLAME_DATASET_TEST_BIN" --make-ckpt "$work/hopper.h5" Hopper-v5 flame-m > /dev/null || exit 1
same_episodes() { # NAME RENDER_ARGS EVAL_ARGS (empty: no eval) ROLLOUT_ARGS
    local name=$1 r e d
    "${R[@]}" $2 --episodes 3 --out "$work/same" --force "${small[@]}" > "$work/log" 2>&1 ||
        { fail "$name: render: $(cat "$work/log")"; return; }
    r=$(render_episodes "$work/log")
    "$FLAME_BIN" rollout $4 --envs 1 --episodes 3 --format minari --force --out "$work/same_ds" \
        > "$work/log" 2>&1 || { fail "$name: rollout: $(cat "$work/log")"; return; }
    d=$(listed_episodes "$("$FLAME_DATASET_TEST_BIN" --episodes-of "$work/same_ds")")
    e=$d
    if [ -n "$3" ]; then
        e=$(listed_episodes "$("$FLAME_BIN" eval $3 --envs 1 --episodes 3 2>&1)")
    fi
    # three episodes, not all alike (else the comparison would prove little)
    local rs=${r#returns: }
    rs=${rs%%|*}
    if [ "$(wc -w <<< "$rs")" -eq 3 ] && [ "$(tr ' ' '\n' <<< "$rs" | sort -u | wc -l)" -gt 1 ] &&
        [ "$r" = "$e" ] && [ "$r" = "$d" ]; then
        ok "$name: render = eval = rollout ($r)"
    else
        fail "$name: render '$r', eval '$e', rollout '$d'"
    fi
}
ck=(--ckpt "$work/hopper.h5" --backend cpu)
same_episodes "checkpoint, seed 2" "${ck[*]} --seed 2" "${ck[*]} --seed 2" "${ck[*]} --seed 2"
same_episodes "checkpoint, stochastic, seed 9" "${ck[*]} --seed 9 --stochastic" \
    "${ck[*]} --seed 9 --stochastic" "${ck[*]} --seed 9 --stochastic"
same_episodes "random policy, seed 4" "--policy random --env Hopper-v5 --seed 4" "" \
    "--policy random --env Hopper-v5 --seed 4"

# videos
if command -v ffmpeg > /dev/null && command -v ffprobe > /dev/null; then
    "${R[@]}" --policy random --env Walker2d-v5 --seed 1 --out "$work/w.mp4" "${small[@]}" \
        > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
    frames=$(sed -n 's/^wrote .* (\([0-9]*\) frames)$/\1/p' "$work/log")
    probe=$(ffprobe -v error -count_frames -select_streams v:0 \
        -show_entries stream=nb_read_frames,width,height,codec_name -of csv=p=0 "$work/w.mp4")
    [ "$probe" = "h264,64,48,$frames" ] && ok "mp4: h264, 64 x 48, $frames frames" ||
        fail "mp4: ffprobe says '$probe', flame wrote $frames frames"
    "${R[@]}" --policy random --env Walker2d-v5 --seed 1 --out "$work/w.mp4" "${small[@]}" \
        > "$work/log" 2>&1
    [ $? -eq 2 ] && grep -q "already exists; pass --force" "$work/log" &&
        ok "existing video refused" || fail "existing video: $(cat "$work/log")"
    "${R[@]}" --policy random --env Walker2d-v5 --seed 2 --out "$work/w.mp4" "${small[@]}" --force \
        > "$work/log" 2>&1 && ok "--force replaces a video" || fail "--force: $(cat "$work/log")"
else
    echo "ffmpeg/ffprobe not installed: video checks skipped"
fi

# bad input: exit 2, one line naming the fix, nothing written
expect2() { # NAME PATTERN CMD...
    local name=$1 pat=$2
    shift 2
    "$@" > "$work/out" 2> "$work/err"
    local rc=$?
    if [ $rc -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -Eq -e "$pat" "$work/err"; then
        ok "$name"
    else
        fail "$name: exit $rc, stderr: $(cat "$work/err")"
    fi
}
expect2 "no ffmpeg on PATH" "ffmpeg is not installed.*apt-get install ffmpeg" \
    env PATH=/nonexistent "$FLAME_BIN" render --policy random --env Hopper-v5 --out "$work/x.mp4"
expect2 "no OpenGL library" "no OpenGL.*apt-get install libosmesa6" \
    env FLAME_LIBEGL=/nonexistent/libEGL.so FLAME_LIBOSMESA=/nonexistent/libOSMesa.so \
    "${R[@]}" --policy random --env Hopper-v5 --out "$work/x"
expect2 "no OSMesa" "OSMesa.*apt-get install libosmesa6" env FLAME_LIBOSMESA=/nonexistent/l.so \
    "${R[@]}" --policy random --env Hopper-v5 --gl osmesa --out "$work/x"
mkdir -p "$work/notes" && echo keep > "$work/notes/readme.txt"
expect2 "--force on a directory of other files" "holds other files than frame_" \
    "${R[@]}" --policy random --env Hopper-v5 --out "$work/notes" --force "${small[@]}"
[ "$(cat "$work/notes/readme.txt")" = keep ] && ok "other files untouched" || fail "readme changed"
expect2 "existing frame directory" "already exists; pass --force" \
    "${R[@]}" --policy random --env Hopper-v5 --out "$work/frames" "${small[@]}"
expect2 "unknown env" "unknown env id 'Hoper-v5'" \
    "${R[@]}" --policy random --env Hoper-v5 --out "$work/x"
expect2 "random policy without env" "needs --env" "${R[@]}" --policy random --out "$work/x"
expect2 "no output" "--out FILE.mp4" "${R[@]}" --policy random --env Hopper-v5
expect2 "bad camera" "unknown --camera 'side'" \
    "${R[@]}" --policy random --env Hopper-v5 --camera side --out "$work/x"
expect2 "bad size" "--width '8' is not valid: expected an integer in \[16, 8192\]" \
    "${R[@]}" --policy random --env Hopper-v5 --width 8 --out "$work/x"
expect2 "bad gl" "unknown --gl 'vulkan'" \
    "${R[@]}" --policy random --env Hopper-v5 --gl vulkan --out "$work/x"
expect2 "missing checkpoint" "cannot open|no such|not a readable" \
    "${R[@]}" --ckpt "$work/none.h5" --out "$work/x"
expect2 "checkpoint of another env" "trained on Hopper-v5, not on --env Ant-v5" \
    "${R[@]}" --ckpt "$work/hopper.h5" --env Ant-v5 --out "$work/x"
expect2 "missing output directory" "does not exist" \
    "${R[@]}" --policy random --env Hopper-v5 --out "$work/no/such/x.mp4"
[ ! -e "$work/x" ] && [ ! -e "$work/x.mp4" ] && ok "nothing written by refused commands" ||
    fail "a refused command wrote output"

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
