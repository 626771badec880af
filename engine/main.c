/* sparseengine: the inference engine front end. Not built yet (see the engine issue). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: sparseengine COMMAND ...\n\nThe inference engine is not built yet.\n");
        return 0;
    }
    fprintf(stderr, "sparseengine: engine not built yet\n");
    return 1;
}
