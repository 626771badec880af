/* Checkpoint container: round trips, atomic replacement, and every way a file can be
 * damaged or forged (flipped bytes, truncation, lying headers, malformed payloads with a
 * valid checksum). Every reader failure must be ST_ERR_INPUT naming the file. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "st_ckpt.h"
#include "st_rng.h"
#include "st_test_util.h"

static size_t slurp(const char *path, uint8_t *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(buf, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Reading must fail with ST_ERR_INPUT, name the file, and mention needle (if given). */
static void expect_bad(const char *path, const char *needle) {
    st_ckpt *c = (st_ckpt *)1;
    st_error err = {0};
    ck_assert_int_eq(st_ckpt_read(path, &c, &err), ST_ERR_INPUT);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message lacks path: %s", err.msg);
    if (needle) ck_assert_msg(strstr(err.msg, needle) != NULL, "no '%s' in: %s", needle, err.msg);
}

/* Entries in dir whose name contains ".tmp-": leftovers of a failed write. */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp-") != NULL;
    closedir(d);
    return n;
}

/* A small checkpoint used by several tests. */
static void write_sample(const char *path, const char *tag) {
    st_error err = {0};
    st_ckpt_writer *w = st_ckpt_writer_new();
    ck_assert_ptr_nonnull(w);
    float x[6] = {1, -2, 3.5f, 0, 1e-30f, 7};
    int64_t sh[2] = {2, 3};
    ck_assert_int_eq(st_ckpt_put_tensor(w, "w", ST_DT_F32, 2, sh, x, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "b", ST_DT_U8, 1, sh, "abc", &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "tag", tag, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "epoch", "12", &err), ST_OK);
    ck_assert_msg(st_ckpt_write(w, path, &err) == ST_OK, "%s", err.msg);
    st_ckpt_writer_free(w);
}

static void expect_tag(const char *path, const char *tag) {
    st_ckpt *c;
    st_error err = {0};
    ck_assert_msg(st_ckpt_read(path, &c, &err) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(st_ckpt_string(c, "tag"), tag);
    st_ckpt_free(c);
}

START_TEST(test_ckpt_round_trip) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "ckpt-rt");
    snprintf(path, sizeof path, "%s/rt.ckpt", dir);
    st_rng r;
    st_rng_seed(&r, 5);
    enum { NBIG = 100003 };
    float *big = malloc(NBIG * sizeof *big);
    stt_fill_uniform(big, NBIG, -1, 1, &r);
    uint8_t u8[5] = {0, 1, 254, 255, 7};
    int32_t i32 = -123456;
    uint64_t u64[6] = {0, 1, UINT64_MAX, 1ull << 63, 42, 99};
    int64_t sh_big[1] = {NBIG}, sh_u8[1] = {5}, sh_u64[3] = {2, 1, 3}, sh_empty[2] = {0, 7};
    int64_t sh8[8] = {1, 1, 1, 1, 1, 1, 1, 2};
    float two[2] = {0.25f, -0.5f};
    st_error err = {0};
    st_ckpt_writer *w = st_ckpt_writer_new();
    ck_assert_int_eq(st_ckpt_put_tensor(w, "layer0.w", ST_DT_F32, 1, sh_big, big, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "mask", ST_DT_U8, 1, sh_u8, u8, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "step", ST_DT_I32, 0, NULL, &i32, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "rng", ST_DT_U64, 3, sh_u64, u64, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "empty", ST_DT_F32, 2, sh_empty, NULL, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "deep", ST_DT_F32, 8, sh8, two, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "model", "mlp 784-300-10", &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "note", "", &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "utf8", "\xc3\xa9t\xc3\xa9 \"q\" \n", &err), ST_OK);
    float big0 = big[0];
    big[0] = 99; /* the writer holds a copy, so this must not reach the file */
    ck_assert_msg(st_ckpt_write(w, path, &err) == ST_OK, "%s", err.msg);
    st_ckpt_writer_free(w);
    ck_assert_int_eq(count_tmp_files(dir), 0);

    st_ckpt *c;
    ck_assert_msg(st_ckpt_read(path, &c, &err) == ST_OK, "%s", err.msg);
    ck_assert_int_eq(st_ckpt_num_tensors(c), 6);
    const char *order[] = {"layer0.w", "mask", "step", "rng", "empty", "deep"};
    for (int i = 0; i < 6; i++) {
        const st_ckpt_tensor *t = st_ckpt_tensor_at(c, i);
        ck_assert_str_eq(t->name, order[i]);
        ck_assert_ptr_eq(st_ckpt_find(c, order[i]), t);
        ck_assert_uint_eq((uintptr_t)t->data % 64, 0);
        for (int d = t->ndim; d < 8; d++)
            ck_assert_int_eq(t->shape[d], 0);
    }
    ck_assert_ptr_null(st_ckpt_tensor_at(c, 6));
    ck_assert_ptr_null(st_ckpt_tensor_at(c, -1));
    ck_assert_ptr_null(st_ckpt_find(c, "nope"));
    ck_assert_ptr_null(st_ckpt_find(c, ""));

    const st_ckpt_tensor *t = st_ckpt_find(c, "layer0.w");
    ck_assert_int_eq(t->dtype, ST_DT_F32);
    ck_assert_int_eq(t->ndim, 1);
    ck_assert_int_eq(t->shape[0], NBIG);
    ck_assert_uint_eq(t->nbytes, NBIG * sizeof(float));
    big[0] = big0;
    ck_assert_int_eq(memcmp(t->data, big, t->nbytes), 0);
    t = st_ckpt_find(c, "mask");
    ck_assert_int_eq(t->dtype, ST_DT_U8);
    ck_assert_int_eq(memcmp(t->data, u8, 5), 0);
    t = st_ckpt_find(c, "step");
    ck_assert_int_eq(t->ndim, 0);
    ck_assert_uint_eq(t->nbytes, 4);
    ck_assert_int_eq(*(const int32_t *)t->data, -123456);
    t = st_ckpt_find(c, "rng");
    ck_assert_int_eq(t->dtype, ST_DT_U64);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_int_eq(t->shape[2], 3);
    ck_assert_int_eq(memcmp(t->data, u64, sizeof u64), 0);
    t = st_ckpt_find(c, "empty");
    ck_assert_uint_eq(t->nbytes, 0);
    ck_assert_int_eq(t->shape[1], 7);
    t = st_ckpt_find(c, "deep");
    ck_assert_int_eq(t->ndim, 8);
    ck_assert_int_eq(memcmp(t->data, two, sizeof two), 0);

    ck_assert_str_eq(st_ckpt_string(c, "model"), "mlp 784-300-10");
    ck_assert_str_eq(st_ckpt_string(c, "note"), "");
    ck_assert_str_eq(st_ckpt_string(c, "utf8"), "\xc3\xa9t\xc3\xa9 \"q\" \n");
    ck_assert_ptr_null(st_ckpt_string(c, "missing"));
    st_ckpt_free(c);

    /* An empty checkpoint is valid too. */
    w = st_ckpt_writer_new();
    ck_assert_int_eq(st_ckpt_write(w, path, &err), ST_OK);
    st_ckpt_writer_free(w);
    ck_assert_int_eq(st_ckpt_read(path, &c, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_num_tensors(c), 0);
    ck_assert_ptr_null(st_ckpt_find(c, "w"));
    ck_assert_ptr_null(st_ckpt_string(c, "k"));
    st_ckpt_free(c);
    free(big);
}
END_TEST

START_TEST(test_ckpt_put_rejects) {
    st_error err = {0};
    st_ckpt_writer *w = st_ckpt_writer_new();
    float x[4] = {0};
    int64_t sh[9] = {4, 1, 1, 1, 1, 1, 1, 1, 1}, neg[1] = {-1}, huge[2] = {1ll << 40, 1ll << 40};
    ck_assert_int_eq(st_ckpt_put_tensor(w, "a", ST_DT_F32, 1, sh, x, &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "a", ST_DT_U8, 1, sh, x, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "duplicate tensor name \"a\""), "%s", err.msg);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "", ST_DT_F32, 1, sh, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "d", (st_dtype)9, 1, sh, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "n", ST_DT_F32, 9, sh, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "n", ST_DT_F32, -1, sh, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "n", ST_DT_F32, 1, neg, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "n", ST_DT_F32, 1, sh, NULL, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_tensor(w, "n", ST_DT_F32, 2, huge, x, &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_string(w, "k", "v", &err), ST_OK);
    ck_assert_int_eq(st_ckpt_put_string(w, "k", "v2", &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "duplicate string key \"k\""), "%s", err.msg);
    ck_assert_int_eq(st_ckpt_put_string(w, "", "v", &err), ST_ERR_INPUT);
    ck_assert_int_eq(st_ckpt_put_string(w, "z", NULL, &err), ST_ERR_INPUT);
    /* A tensor and a string may share a name: they live in separate namespaces. */
    ck_assert_int_eq(st_ckpt_put_string(w, "a", "meta", &err), ST_OK);
    st_ckpt_writer_free(w);
    st_ckpt_writer_free(NULL);
    st_ckpt_free(NULL);
}
END_TEST

START_TEST(test_ckpt_atomic_replace) {
    char dir[512], path[600], p2[700];
    stt_tmpdir(dir, sizeof dir, "ckpt-atomic");
    snprintf(path, sizeof path, "%s/last.ckpt", dir);
    write_sample(path, "A");
    write_sample(path, "B"); /* replaces */
    expect_tag(path, "B");
    ck_assert_int_eq(count_tmp_files(dir), 0);

    st_ckpt_writer *w = st_ckpt_writer_new();
    st_error err = {0};
    ck_assert_int_eq(st_ckpt_put_string(w, "tag", "C", &err), ST_OK);
    /* The temporary name is taken by a directory: the write fails, the old file stays. */
    snprintf(p2, sizeof p2, "%s.tmp-%ld", path, (long)getpid());
    ck_assert_int_eq(mkdir(p2, 0755), 0);
    ck_assert_int_eq(st_ckpt_write(w, path, &err), ST_ERR_IO);
    ck_assert_msg(strstr(err.msg, path) && strstr(err.msg, "Is a directory"), "%s", err.msg);
    ck_assert_int_eq(rmdir(p2), 0);
    expect_tag(path, "B");
    ck_assert_int_eq(count_tmp_files(dir), 0);

    /* Destination is a directory: rename fails after the temp file was written. */
    snprintf(p2, sizeof p2, "%s/subdir", dir);
    ck_assert_int_eq(mkdir(p2, 0755), 0);
    ck_assert_int_eq(st_ckpt_write(w, p2, &err), ST_ERR_IO);
    ck_assert_msg(strstr(err.msg, p2) && strstr(err.msg, "rename"), "%s", err.msg);
    ck_assert_int_eq(count_tmp_files(dir), 0);

    /* Nonexistent directory. */
    snprintf(p2, sizeof p2, "%s/no/such/dir/x.ckpt", dir);
    ck_assert_int_eq(st_ckpt_write(w, p2, &err), ST_ERR_IO);
    ck_assert_msg(strstr(err.msg, p2) && strstr(err.msg, "No such file"), "%s", err.msg);

    /* Read-only directory (meaningless for root, who may write anyway). */
    if (geteuid() == 0) {
        stt_skip("ckpt read-only directory case: running as root");
    } else {
        snprintf(p2, sizeof p2, "%s/ro", dir);
        ck_assert_int_eq(mkdir(p2, 0755), 0);
        strcat(p2, "/m.ckpt");
        write_sample(p2, "old");
        p2[strlen(p2) - 7] = 0;
        ck_assert_int_eq(chmod(p2, 0555), 0);
        strcat(p2, "/m.ckpt");
        ck_assert_int_eq(st_ckpt_write(w, p2, &err), ST_ERR_IO);
        ck_assert_msg(strstr(err.msg, "Permission denied"), "%s", err.msg);
        expect_tag(p2, "old");
        p2[strlen(p2) - 7] = 0;
        ck_assert_int_eq(count_tmp_files(p2), 0);
        chmod(p2, 0755);
    }
    st_ckpt_writer_free(w);
}
END_TEST

START_TEST(test_ckpt_every_flip_and_truncation) {
    char dir[512], path[600], bad[600];
    stt_tmpdir(dir, sizeof dir, "ckpt-flip");
    snprintf(path, sizeof path, "%s/good.ckpt", dir);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
    write_sample(path, "x");
    static uint8_t buf[4096];
    size_t len = slurp(path, buf, sizeof buf);
    ck_assert_uint_gt(len, 40);
    ck_assert_uint_lt(len, sizeof buf);
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= (uint8_t)(1u << (i % 8));
        spit(bad, buf, len);
        buf[i] ^= (uint8_t)(1u << (i % 8));
        /* Past the header only the CRC can notice. */
        expect_bad(bad, i >= 32 ? "checksum mismatch" : i < 8 ? "bad magic" : NULL);
    }
    for (size_t n = 0; n < len; n++) {
        spit(bad, buf, n);
        expect_bad(bad, n == 0 ? "empty" : "truncated");
    }
    /* Extra bytes after the payload. */
    spit(bad, buf, len);
    FILE *f = fopen(bad, "ab");
    fputc(0, f);
    fclose(f);
    expect_bad(bad, "unexpected byte");
    expect_tag(path, "x");
}
END_TEST

START_TEST(test_ckpt_not_a_checkpoint) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "ckpt-junk");
    snprintf(path, sizeof path, "%s/missing.ckpt", dir);
    expect_bad(path, "No such file");
    expect_bad(dir, "not a regular file");
    snprintf(path, sizeof path, "%s/junk.ckpt", dir);
    st_rng r;
    st_rng_seed(&r, 3);
    uint8_t b[3000];
    size_t sizes[] = {1, 8, 31, 32, 33, 100, 3000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (size_t i = 0; i < sizes[k]; i++)
            b[i] = (uint8_t)st_rng_next(&r);
        spit(path, b, sizes[k]);
        expect_bad(path, "bad magic");
        /* The right magic and version followed by noise. */
        memcpy(b, "STCKPT01\x01\0\0\0", 12);
        spit(path, b, sizes[k]);
        expect_bad(path, NULL);
    }
    memcpy(b, "STCKPT01\x02\0\0\0", 12);
    spit(path, b, 100);
    expect_bad(path, "unsupported checkpoint format version 2");
}
END_TEST

/* ---- forged files: the test encodes the format independently ---- */

typedef struct {
    uint8_t b[4096];
    size_t n;
} pbuf;

static void pb_bytes(pbuf *p, const void *d, size_t n) {
    ck_assert_uint_le(p->n + n, sizeof p->b);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}
static void pb_uint(pbuf *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p->b[p->n++] = (uint8_t)(v >> (8 * i));
}
static void pb_str(pbuf *p, const char *s) {
    pb_uint(p, strlen(s) + 1, 4);
    pb_bytes(p, s, strlen(s) + 1);
}
/* A tensor record; nbytes and the data length may disagree with the shape on purpose. */
static void pb_tensor(pbuf *p, const char *name, int dt, int ndim, const uint64_t *shape,
                      uint64_t nbytes, size_t ndata) {
    pb_uint(p, 2, 1);
    pb_str(p, name);
    pb_uint(p, (uint64_t)dt, 1);
    pb_uint(p, (uint64_t)ndim, 1);
    for (int d = 0; d < ndim; d++)
        pb_uint(p, shape[d], 8);
    pb_uint(p, nbytes, 8);
    while (p->n % 64)
        p->b[p->n++] = 0;
    for (size_t i = 0; i < ndata; i++)
        p->b[p->n++] = (uint8_t)i;
}

/* Writes a file around payload p with a correct CRC; raw_delta skews the stated
 * uncompressed size, raw_set (if nonzero) replaces it. */
static void forge(const char *path, const pbuf *p, int64_t raw_delta, uint64_t raw_set) {
    uint8_t comp[8192];
    uLongf clen = sizeof comp;
    ck_assert_int_eq(compress2(comp, &clen, p->b, p->n, 1), Z_OK);
    pbuf f = {.n = 0};
    pb_bytes(&f, "STCKPT01", 8);
    pb_uint(&f, 1, 4);
    pb_uint(&f, raw_set ? raw_set : (uint64_t)((int64_t)p->n + raw_delta), 8);
    pb_uint(&f, clen, 8);
    pb_uint(&f, crc32(0, comp, (uInt)clen), 4);
    pb_bytes(&f, comp, clen);
    spit(path, f.b, f.n);
}

START_TEST(test_ckpt_forged_payloads) {
    char dir[512], path[600];
    stt_tmpdir(dir, sizeof dir, "ckpt-forge");
    snprintf(path, sizeof path, "%s/forged.ckpt", dir);
    uint64_t s2[2] = {2, 3};
    pbuf p = {.n = 0};

    /* First a well-formed forgery, proving the encoder here matches the format. */
    pb_uint(&p, 1, 1);
    pb_str(&p, "k");
    pb_str(&p, "v");
    pb_tensor(&p, "t", 0, 2, s2, 24, 24);
    forge(path, &p, 0, 0);
    st_ckpt *c;
    st_error err = {0};
    ck_assert_msg(st_ckpt_read(path, &c, &err) == ST_OK, "%s", err.msg);
    ck_assert_str_eq(st_ckpt_string(c, "k"), "v");
    ck_assert_uint_eq(st_ckpt_find(c, "t")->nbytes, 24);
    st_ckpt_free(c);

    /* Stated size off by one either way: zlib output does not match. */
    forge(path, &p, -1, 0);
    expect_bad(path, "does not decompress");
    forge(path, &p, 1, 0);
    expect_bad(path, "does not decompress");
    /* Lying sizes with a valid CRC: refused before any allocation. */
    forge(path, &p, 0, 60ull << 30);
    expect_bad(path, "implausible");
    forge(path, &p, 0, 1ull << 63);
    expect_bad(path, "implausible");

    struct {
        const char *why;
        uint8_t raw[48];
        size_t n;
    } recs[] = {
        {"unknown record kind", {7}, 1},
        {"bad string record", {1, 0, 0, 0, 0}, 5},                                 /* klen 0 */
        {"bad string record", {1, 0xe8, 3, 0, 0, 'a', 0}, 7},                      /* klen 1000 */
        {"bad string record", {1, 3, 0, 0, 0, 'a', 'b', 'c'}, 8},                  /* no NUL */
        {"bad string record", {1, 4, 0, 0, 0, 'a', 0, 'b', 0, 1, 0, 0, 0, 0}, 14}, /* inner NUL */
        {"bad string record", {1, 2, 0, 0, 0, 'a', 0, 9, 0, 0, 0, 'x'}, 12},       /* value cut */
        {"bad string record", {1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0}, 11},              /* empty key */
        {"cut short", {2, 2, 0, 0, 0, 't', 0}, 7},                                 /* no dtype */
        {"bad tensor name", {2, 1, 0, 0, 0, 0, 0, 0}, 8},                          /* empty name */
    };
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
        pbuf q = {.n = 0};
        pb_bytes(&q, recs[i].raw, recs[i].n);
        forge(path, &q, 0, 0);
        expect_bad(path, recs[i].why);
        expect_bad(path, "malformed payload");
    }

    uint64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, sneg[1] = {1ull << 63}, sbig[1] = {1ull << 34},
             sovf[2] = {1ull << 32, 1ull << 32};
    struct {
        const char *why;
        int dt, ndim;
        const uint64_t *shape;
        uint64_t nbytes;
        size_t ndata;
    } ts[] = {
        {"unknown dtype", 9, 2, s2, 6, 6},
        {"too many dimensions", 0, 9, s9, 4, 4},
        {"does not match its shape", 0, 2, s2, 4, 4},
        {"negative dimension", 1, 1, sneg, 1, 1},
        {"runs past the end", 1, 1, sbig, 1ull << 34, 10},
        {"too large", 1, 2, sovf, 0, 0},
        {"runs past the end", 0, 2, s2, 24, 23},
    };
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        pbuf q = {.n = 0};
        pb_tensor(&q, "t", ts[i].dt, ts[i].ndim, ts[i].shape, ts[i].nbytes, ts[i].ndata);
        forge(path, &q, 0, 0);
        expect_bad(path, ts[i].why);
    }

    /* Duplicates that the writer would have refused. */
    pbuf q = {.n = 0};
    pb_tensor(&q, "t", 1, 1, s2, 2, 2);
    pb_tensor(&q, "u", 1, 1, s2, 2, 2);
    pb_tensor(&q, "t", 1, 1, s2, 2, 2);
    forge(path, &q, 0, 0);
    expect_bad(path, "duplicate tensor name");
    q.n = 0;
    pb_uint(&q, 1, 1);
    pb_str(&q, "k");
    pb_str(&q, "a");
    pb_uint(&q, 1, 1);
    pb_str(&q, "k");
    pb_str(&q, "b");
    forge(path, &q, 0, 0);
    expect_bad(path, "duplicate string key");
}
END_TEST

Suite *ckpt_suite(void) {
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60); /* the flip/truncation sweep is slower under sanitizers */
    tcase_add_test(tc, test_ckpt_round_trip);
    tcase_add_test(tc, test_ckpt_put_rejects);
    tcase_add_test(tc, test_ckpt_atomic_replace);
    tcase_add_test(tc, test_ckpt_every_flip_and_truncation);
    tcase_add_test(tc, test_ckpt_not_a_checkpoint);
    tcase_add_test(tc, test_ckpt_forged_payloads);
    suite_add_tcase(s, tc);
    return s;
}
