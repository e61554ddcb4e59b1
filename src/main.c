/* main.c: the `flame` command line (placeholder until the CLI lands). */
#include <stdio.h>
int main(void) {
    puts("flame");
    return 0;
}
