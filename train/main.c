#include <stdio.h>
int main(void) { fprintf(stderr, "sparsetrain: not built yet\n"); return 1; }
