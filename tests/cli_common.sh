# shellcheck shell=bash
# cli_common.sh: what the CLI test scripts share (source it after `set -u`):
#   cli_workdir NAME     a fresh directory /tmp/NAME_XXXXXX to work in ($T, removed at exit with
#                        the processes listed in $pids killed first); the script cds into it
#   fail MSG...          counts a failure and prints it
#   wait_for SECONDS CONDITION...
#                        polls the condition every 0.05 s; status 1 when it never held
#   expect_rc NAME RC PATTERN cmd...
#                        runs cmd (stdout to out.txt, stderr to err.txt); its exit status must be RC
#                        and, when PATTERN is set, stderr exactly one line matching it (extended
#                        regex)
#   cli_done WHAT        the summary line; exit 1 after any failure
fails=0
pids=()

cli_cleanup() {
    local p
    for p in "${pids[@]}"; do
        kill -9 "$p" 2> /dev/null
    done
    chmod -R u+w "$T" 2> /dev/null
    rm -rf "$T"
}

cli_workdir() {
    T=$(mktemp -d "/tmp/$1_XXXXXX") || exit 1
    trap cli_cleanup EXIT
    cd "$T" || exit 1
}

wait_for() {
    local secs=$1
    shift
    for _ in $(seq 1 $((secs * 20))); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

expect_rc() {
    local name=$1 want=$2 pat=$3
    shift 3
    "$@" > out.txt 2> err.txt
    local rc=$?
    if [ $rc -ne "$want" ]; then
        fail "$name: exit $rc, expected $want: $(head -c 600 err.txt)"
    elif [ -n "$pat" ] && [ "$(wc -l < err.txt)" -ne 1 ]; then
        fail "$name: stderr is not one line: $(cat err.txt)"
    elif [ -n "$pat" ] && ! grep -Eq -- "$pat" err.txt; then
        fail "$name: stderr lacks /$pat/: $(cat err.txt)"
    else
        echo "ok   $name ($rc) $(head -c 400 err.txt)"
    fi
}

cli_done() {
    if [ "$fails" -ne 0 ]; then
        echo "$fails failure(s)"
        exit 1
    fi
    echo "all $1 passed"
}
