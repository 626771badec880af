/* Writes the fuzzer's seed corpus: a few small valid models covering the importer's
 * operators and patterns (tests/st_onnx_build.h). Usage: fuzz_onnx_seeds DIR */
#include <stdio.h>
#include <stdlib.h>

#include "st_onnx_build.h"

static void save(stb *b, const char *dir, const char *name) {
    size_t len;
    uint8_t *buf = stb_pack(b, &len);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        perror(path);
        exit(1);
    }
    fclose(f);
    free(buf);
    stb_free(b);
}

static float w[4096];

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < 4096; i++) w[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    const char *dir = argv[1];

    /* conv, BN, pools, SiLU pattern, concat, resize, GAP, flatten, Gemm, softmax */
    stb *b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 2, 6, 6});
    stb_init(b, "cw", 4, (int64_t[]){4, 2, 3, 3}, w);
    stb_init(b, "cb", 1, (int64_t[]){4}, w);
    for (int i = 0; i < 4; i++) {
        const char *n[] = {"s", "bb", "m", "v"};
        stb_init(b, n[i], 1, (int64_t[]){4}, w + 100 + i * 4);
    }
    Onnx__NodeProto *n = stb_node(b, "Conv", "conv", "x,cw,cb", "a");
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_node(b, "BatchNormalization", "bn", "a,s,bb,m,v", "a2");
    n = stb_node(b, "MaxPool", "mp", "a2", "p");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){2, 2});
    stb_attr_ints(b, n, "strides", 2, (int64_t[]){2, 2});
    stb_node(b, "Sigmoid", "sg", "p", "sp");
    stb_node(b, "Mul", "mul", "p,sp", "q");
    stb_attr_i(b, stb_node(b, "Concat", "cat", "p,q", "c"), "axis", 1);
    stb_init(b, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 2, 2});
    stb_node(b, "Resize", "rs", "c,,sc", "u");
    n = stb_node(b, "AveragePool", "ap", "u", "u2");
    stb_attr_ints(b, n, "kernel_shape", 2, (int64_t[]){3, 3});
    stb_attr_ints(b, n, "pads", 4, (int64_t[]){1, 1, 1, 1});
    stb_node(b, "GlobalAveragePool", "gap", "u2", "g");
    stb_node(b, "Flatten", "fl", "g", "f");
    stb_init(b, "fw", 2, (int64_t[]){3, 8}, w);
    stb_attr_i(b, stb_node(b, "Gemm", "fc", "f,fw", "l"), "transB", 1);
    stb_node(b, "Softmax", "sm", "l", "y");
    stb_output(b, "y");
    save(b, dir, "chain");

    /* shape folding into Reshape, MatMul + Add, Clip, LeakyRelu, Dropout */
    b = stb_new(13);
    stb_input(b, "x", 4, (int64_t[]){-1, 3, 4, 4});
    stb_node(b, "Shape", "sh", "x", "s");
    stb_init_i64(b, "zero", 0, NULL, (int64_t[]){0});
    stb_node(b, "Gather", "ga", "s,zero", "n");
    stb_init_i64(b, "ax", 1, (int64_t[]){1}, (int64_t[]){0});
    stb_node(b, "Unsqueeze", "un", "n,ax", "n1");
    stb_init_i64(b, "m1", 1, (int64_t[]){1}, (int64_t[]){-1});
    stb_attr_i(b, stb_node(b, "Concat", "ct", "n1,m1", "t"), "axis", 0);
    stb_node(b, "Reshape", "re", "x,t", "f");
    stb_init(b, "W", 2, (int64_t[]){48, 5}, w);
    stb_init(b, "B", 1, (int64_t[]){5}, w + 7);
    stb_node(b, "MatMul", "mm", "f,W", "h");
    stb_node(b, "Add", "ad", "h,B", "h2");
    stb_init(b, "lo", 0, NULL, (float[]){-0.5f});
    stb_node(b, "Clip", "cl", "h2,lo,", "h3");
    stb_attr_f(b, stb_node(b, "LeakyRelu", "lr", "h3", "h4"), "alpha", 0.1f);
    stb_node(b, "Dropout", "dr", "h4", "y");
    stb_output(b, "y");
    save(b, dir, "flatten");

    /* opset 9: Upsample, Clip attributes, Identity, grouped conv with SAME padding */
    b = stb_new(9);
    stb_input(b, "x", 4, (int64_t[]){1, 4, 5, 5});
    stb_init(b, "gw", 4, (int64_t[]){4, 2, 3, 3}, w);
    n = stb_node(b, "Conv", "gc", "x,gw", "a");
    stb_attr_i(b, n, "group", 2);
    stb_attr_s(b, n, "auto_pad", "SAME_UPPER");
    stb_init(b, "sc", 1, (int64_t[]){4}, (float[]){1, 1, 3, 3});
    stb_node(b, "Upsample", "up", "a,sc", "u");
    n = stb_node(b, "Clip", "cl", "u", "c");
    stb_attr_f(b, n, "min", 0.0f);
    stb_attr_f(b, n, "max", 6.0f);
    stb_node(b, "Identity", "id", "c", "i");
    stb_node(b, "Relu", "r", "i", "y");
    stb_output(b, "y");
    save(b, dir, "opset9");
    return 0;
}
