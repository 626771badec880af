/* PNG reader and writer. Test images are encoded here with libpng itself, in every colour
 * type, bit depth and interlacing, from known samples, and the decoded pixels are checked
 * exactly. Broken files check the problem kind and that the message names the file. */
#include <check.h>
#include <dirent.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "st_image.h"
#include "st_rng.h"
#include "st_test_util.h"

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} membuf;

static void mem_write(png_structp png, png_bytep d, png_size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2;
        m->buf = realloc(m->buf, m->cap);
        ck_assert_ptr_nonnull(m->buf);
    }
    memcpy(m->buf + m->len, d, n);
    m->len += n;
}

static void mem_flush(png_structp png) { (void)png; }

static int channels_of(int ctype) {
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGBA: return 4;
    default: return 1; /* palette: one index */
    }
}

/* Sample (x, y, ch) of a test image at this bit depth: hashed, so 16-bit values have
 * arbitrary low bytes (which tells strip_16 from scale_16). */
static unsigned sample(int x, int y, int ch, int depth) {
    return (unsigned)st_hash64((uint64_t)(y * 1000 + x) * 8 + ch) & ((1u << depth) - 1);
}

static const png_color test_palette[256] = {{0, 0, 0}, {255, 0, 0}, {0, 200, 0}, {10, 20, 250},
                                            {128, 128, 128}, {1, 2, 3}, {250, 250, 5}};

static png_color pal_entry(unsigned i) {
    if (i < 7) return test_palette[i];
    return (png_color){(png_byte)(i * 3), (png_byte)(255 - i), (png_byte)(i * 7)};
}

/* Encodes a w x h image of `sample` values; trns adds a tRNS chunk. */
static membuf encode(int w, int h, int ctype, int depth, int interlace, int trns) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    ck_assert_ptr_nonnull(info);
    if (setjmp(png_jmpbuf(png))) ck_abort_msg("libpng failed to encode the test image");
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, w, h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    int nc = channels_of(ctype);
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        for (int i = 0; i < (1 << depth); i++) pal[i] = pal_entry(i);
        png_set_PLTE(png, info, pal, 1 << depth);
        if (trns) {
            png_byte alpha[3] = {0, 128, 255};
            png_set_tRNS(png, info, alpha, 1 << depth < 3 ? 1 << depth : 3, NULL);
        }
    } else if (trns) {
        png_color_16 tc = {0};
        tc.gray = tc.red = tc.green = tc.blue = 1;
        png_set_tRNS(png, info, NULL, 0, &tc);
    }
    png_write_info(png, info);
    size_t rowbytes = ((size_t)w * nc * depth + 7) / 8;
    uint8_t *rows = calloc(h, rowbytes);
    png_bytep *rp = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++) {
        uint8_t *r = rows + y * rowbytes;
        rp[y] = r;
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < nc; ch++) {
                unsigned v = sample(x, y, ch, depth), bit = (unsigned)(x * nc + ch) * depth;
                if (depth == 16) {
                    r[bit / 8] = (uint8_t)(v >> 8);
                    r[bit / 8 + 1] = (uint8_t)v;
                } else {
                    r[bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
                }
            }
    }
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(rp);
    return m;
}

/* What the reader must produce for pixel (x, y) as 8-bit RGB (gray replicated). */
static void expected_rgb(int ctype, int depth, int x, int y, uint8_t rgb[3]) {
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_color c = pal_entry(sample(x, y, 0, depth));
        rgb[0] = c.red, rgb[1] = c.green, rgb[2] = c.blue;
        return;
    }
    int colour = ctype & PNG_COLOR_MASK_COLOR;
    for (int ch = 0; ch < 3; ch++) {
        unsigned v = sample(x, y, colour ? ch : 0, depth);
        /* low depths are scaled to 0..255; 16-bit keeps the high byte (strip_16) */
        rgb[ch] = (uint8_t)(depth == 16 ? v >> 8 : v * (255u / ((1u << depth) - 1)));
    }
}

static void check_decode(int ctype, int depth, int interlace, int trns) {
    const int w = 13, h = 7; /* odd sizes: partial bytes at row ends, all Adam7 passes */
    membuf m = encode(w, h, ctype, depth, interlace, trns);
    int colour = (ctype & PNG_COLOR_MASK_COLOR) != 0;
    for (int want = 0; want <= 3; want++) {
        if (want == 2) continue;
        st_image im;
        st_img_problem p;
        st_error err = {0};
        ck_assert_msg(st_png_read_mem(m.buf, m.len, "t.png", want, &im, &p, &err) == ST_OK,
                      "ctype %d depth %d il %d: %s", ctype, depth, interlace, err.msg);
        ck_assert_int_eq(p, ST_IMG_OK);
        int c = want ? want : colour ? 3 : 1;
        ck_assert_int_eq(im.c, c);
        ck_assert_int_eq(im.w, w);
        ck_assert_int_eq(im.h, h);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t e[3], *got = im.data + (y * w + x) * c;
                expected_rgb(ctype, depth, x, y, e);
                if (c == 1 && colour) /* OpenCV's luminance */
                    e[0] = (uint8_t)((e[0] * 4899u + e[1] * 9617u + e[2] * 1868u + 8192u) >> 14);
                for (int ch = 0; ch < c; ch++)
                    ck_assert_msg(got[ch] == e[ch],
                                  "ctype %d depth %d il %d want %d: (%d,%d,%d) = %d, expected %d",
                                  ctype, depth, interlace, want, x, y, ch, got[ch], e[ch]);
            }
        st_image_free(&im);
    }
    free(m.buf);
}

START_TEST(test_decode_all_formats) {
    static const int cases[][3] = {
        /* colour type, bit depth, tRNS */
        {PNG_COLOR_TYPE_GRAY, 1, 0},       {PNG_COLOR_TYPE_GRAY, 2, 0},
        {PNG_COLOR_TYPE_GRAY, 4, 0},       {PNG_COLOR_TYPE_GRAY, 8, 0},
        {PNG_COLOR_TYPE_GRAY, 16, 0},      {PNG_COLOR_TYPE_GRAY, 8, 1},
        {PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0}, {PNG_COLOR_TYPE_GRAY_ALPHA, 16, 0},
        {PNG_COLOR_TYPE_RGB, 8, 0},        {PNG_COLOR_TYPE_RGB, 16, 0},
        {PNG_COLOR_TYPE_RGB, 8, 1},        {PNG_COLOR_TYPE_RGBA, 8, 0},
        {PNG_COLOR_TYPE_RGBA, 16, 0},      {PNG_COLOR_TYPE_PALETTE, 1, 0},
        {PNG_COLOR_TYPE_PALETTE, 2, 0},    {PNG_COLOR_TYPE_PALETTE, 4, 0},
        {PNG_COLOR_TYPE_PALETTE, 8, 0},    {PNG_COLOR_TYPE_PALETTE, 1, 1},
        {PNG_COLOR_TYPE_PALETTE, 2, 1},    {PNG_COLOR_TYPE_PALETTE, 4, 1},
        {PNG_COLOR_TYPE_PALETTE, 8, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int il = 0; il < 2; il++) check_decode(cases[i][0], cases[i][1], il, cases[i][2]);
}
END_TEST

static void write_bytes(const char *path, const void *d, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* Reading path must fail with problem `want` and a message naming the file. */
static void expect_problem(const char *path, st_img_problem want) {
    st_image im = {1, 1, 1, (uint8_t *)1};
    st_img_problem p = ST_IMG_OK;
    st_error err = {0};
    st_status s = st_png_read(path, 0, &im, &p, &err);
    ck_assert_msg(s == ST_ERR_INPUT, "%s: status %d, problem %d (%s)", path, s, p, err.msg);
    ck_assert_msg(p == want, "%s: problem %s, expected %s (%s)", path, st_img_problem_name(p),
                  st_img_problem_name(want), err.msg);
    ck_assert_msg(strstr(err.msg, path), "message lacks the path: %s", err.msg);
    ck_assert_msg(strstr(err.msg, "re-export or delete the file"), "no hint: %s", err.msg);
    ck_assert_ptr_null(im.data);
}

static void expect_ok(const char *path, int w, int h) {
    st_image im;
    st_img_problem p = ST_IMG_TRUNCATED;
    st_error err = {0};
    ck_assert_msg(st_png_read(path, 3, &im, &p, &err) == ST_OK, "%s: %s", path, err.msg);
    ck_assert_int_eq(p, ST_IMG_OK);
    ck_assert_int_eq(im.w, w);
    ck_assert_int_eq(im.h, h);
    st_image_free(&im);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Offset of the first chunk of this type (its length field), or 0. */
static size_t find_chunk(const membuf *m, const char *type) {
    for (size_t off = 8; off + 12 <= m->len; off += 12 + be32(m->buf + off))
        if (memcmp(m->buf + off + 4, type, 4) == 0) return off;
    return 0;
}

static void fix_crc(uint8_t *chunk) {
    uint32_t n = be32(chunk), c = (uint32_t)crc32(0, chunk + 4, 4 + n);
    uint8_t *p = chunk + 8 + n;
    p[0] = (uint8_t)(c >> 24), p[1] = (uint8_t)(c >> 16), p[2] = (uint8_t)(c >> 8), p[3] = (uint8_t)c;
}

START_TEST(test_broken_files) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "png-broken");
    membuf m = encode(40, 30, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    size_t ihdr = find_chunk(&m, "IHDR"), idat = find_chunk(&m, "IDAT");
    ck_assert_uint_eq(ihdr, 8);
    ck_assert_uint_gt(idat, 0);
    uint32_t idat_len = be32(m.buf + idat);
    ck_assert_uint_gt(idat_len, 20);
    uint8_t *b = malloc(m.len);

    snprintf(path, sizeof path, "%s/empty.png", dir);
    write_bytes(path, "", 0);
    expect_problem(path, ST_IMG_EMPTY);

    /* cut: inside the signature, right after it, inside IHDR, inside IDAT data, inside
     * the last IDAT's CRC */
    size_t cuts[] = {4, 8, 20, idat + 8 + idat_len / 2, idat + 8 + idat_len + 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path, sizeof path, "%s/cut%zu.png", dir, cuts[i]);
        write_bytes(path, m.buf, cuts[i]);
        expect_problem(path, ST_IMG_TRUNCATED);
    }
    /* all image data present, IEND missing: accepted (documented in st_image.h) */
    ck_assert_uint_eq(find_chunk(&m, "IEND"), m.len - 12);
    snprintf(path, sizeof path, "%s/noiend.png", dir);
    write_bytes(path, m.buf, m.len - 12);
    expect_ok(path, 40, 30);

    snprintf(path, sizeof path, "%s/text.png", dir);
    write_bytes(path, "hello, I am not an image\n", 25);
    expect_problem(path, ST_IMG_NOT_PNG);

    memcpy(b, m.buf, m.len);
    b[idat + 8 + idat_len / 2] ^= 0x10;
    snprintf(path, sizeof path, "%s/idatflip.png", dir);
    write_bytes(path, b, m.len);
    expect_problem(path, ST_IMG_CRC);

    memcpy(b, m.buf, m.len);
    b[ihdr + 8 + 13] ^= 0x01; /* IHDR's CRC itself */
    snprintf(path, sizeof path, "%s/ihdrcrc.png", dir);
    write_bytes(path, b, m.len);
    expect_problem(path, ST_IMG_CRC);

    /* bad zlib data with a valid CRC: corrupt */
    memcpy(b, m.buf, m.len);
    memset(b + idat + 8, 0xFF, 4);
    fix_crc(b + idat);
    snprintf(path, sizeof path, "%s/zlib.png", dir);
    write_bytes(path, b, m.len);
    expect_problem(path, ST_IMG_CORRUPT);

    /* width 0 in IHDR (valid CRC): corrupt */
    memcpy(b, m.buf, m.len);
    memset(b + ihdr + 8, 0, 4);
    fix_crc(b + ihdr);
    snprintf(path, sizeof path, "%s/zero.png", dir);
    write_bytes(path, b, m.len);
    expect_problem(path, ST_IMG_CORRUPT);

    /* huge dimensions (valid CRC): refused before any pixel buffer exists */
    uint32_t dims[][2] = {{16385, 30}, {40, 20000}, {2000000000u, 2000000000u}};
    for (int i = 0; i < 3; i++) {
        memcpy(b, m.buf, m.len);
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 4; j++) b[ihdr + 8 + 4 * k + j] = (uint8_t)(dims[i][k] >> (24 - 8 * j));
        fix_crc(b + ihdr);
        snprintf(path, sizeof path, "%s/huge%d.png", dir, i);
        write_bytes(path, b, m.len);
        expect_problem(path, ST_IMG_TOO_LARGE);
    }

    static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0};
    snprintf(path, sizeof path, "%s/photo.png", dir); /* JPEG bytes under a .png name */
    write_bytes(path, jpeg, sizeof jpeg);
    expect_problem(path, ST_IMG_UNSUPPORTED);
    snprintf(path, sizeof path, "%s/photo.JPEG", dir); /* not even JPEG bytes */
    write_bytes(path, "xyz", 3);
    expect_problem(path, ST_IMG_UNSUPPORTED);
    st_image im;
    st_error err = {0};
    ck_assert_int_eq(st_png_read(path, 0, &im, NULL, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "convert it to PNG"), "%s", err.msg);

    snprintf(path, sizeof path, "%s/x.png", dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    expect_problem(path, ST_IMG_UNREADABLE);
    snprintf(path, sizeof path, "%s/dangling.png", dir);
    ck_assert_int_eq(symlink("no-such-file.png", path), 0);
    expect_problem(path, ST_IMG_UNREADABLE);
    snprintf(path, sizeof path, "%s/missing.png", dir);
    expect_problem(path, ST_IMG_UNREADABLE);
    snprintf(path, sizeof path, "%s/fifo.png", dir); /* must not block waiting for a writer */
    ck_assert_int_eq(mkfifo(path, 0644), 0);
    expect_problem(path, ST_IMG_UNREADABLE);

    /* the intact file still reads, also under a .jpg name (content decides) */
    snprintf(path, sizeof path, "%s/fine.jpg", dir);
    write_bytes(path, m.buf, m.len);
    expect_ok(path, 40, 30);
    free(b);
    free(m.buf);
}
END_TEST

/* Random bytes, and valid files with random damage (CRCs repaired so that the damage
 * reaches the decoder): never a crash, a leak or an OK with garbage dimensions. */
START_TEST(test_random_bytes) {
    st_rng r;
    st_rng_seed(&r, 7);
    membuf m = encode(33, 17, PNG_COLOR_TYPE_PALETTE, 4, 1, 1);
    uint8_t *b = malloc(m.len + 64);
    for (int it = 0; it < 400; it++) {
        size_t n;
        if (it < 100) { /* pure noise, sometimes behind a PNG signature */
            n = 1 + st_rng_below(&r, 64);
            for (size_t i = 0; i < n; i++) b[i] = (uint8_t)st_rng_next(&r);
            if (it % 2 && n >= 8) memcpy(b, m.buf, 8);
        } else {
            n = m.len;
            memcpy(b, m.buf, n);
            int flips = 1 + (int)st_rng_below(&r, 4);
            for (int k = 0; k < flips; k++) b[8 + st_rng_below(&r, (uint32_t)n - 8)] ^= (uint8_t)(1 + st_rng_below(&r, 255));
            if (it % 2) /* repair every CRC the damage left intact in structure */
                for (size_t off = 8; off + 12 <= n && be32(b + off) <= n - off - 12; off += 12 + be32(b + off))
                    fix_crc(b + off);
            if (it % 5 == 0) n -= st_rng_below(&r, (uint32_t)n);
        }
        st_image im;
        st_img_problem p = ST_IMG_PROBLEM_COUNT;
        st_error err = {0};
        st_status s = st_png_read_mem(b, n, "fuzz.png", it % 4 == 3 ? 1 : 0, &im, &p, &err);
        if (s == ST_OK) { /* damage libpng tolerates (palette values, extra data) */
            ck_assert_int_eq(p, ST_IMG_OK);
            ck_assert(im.w > 0 && im.h > 0 && im.w <= 16384 && im.h <= 16384 && im.data);
            st_image_free(&im);
        } else {
            ck_assert_int_eq(s, ST_ERR_INPUT);
            ck_assert(p > ST_IMG_OK && p < ST_IMG_PROBLEM_COUNT);
            ck_assert_msg(strstr(err.msg, "fuzz.png"), "%s", err.msg);
            ck_assert_ptr_null(im.data);
        }
    }
    free(b);
    free(m.buf);
}
END_TEST

START_TEST(test_write_round_trip) {
    char dir[512], path[700];
    stt_tmpdir(dir, sizeof dir, "png-write");
    for (int c = 1; c <= 3; c += 2) {
        st_image a, back;
        ck_assert_int_eq(st_image_alloc(&a, c, 21, 34), ST_OK);
        for (size_t i = 0; i < (size_t)c * 21 * 34; i++) a.data[i] = (uint8_t)(st_hash64(i) >> 7);
        snprintf(path, sizeof path, "%s/rt%d.png", dir, c);
        st_error err = {0};
        ck_assert_msg(st_png_write(path, &a, &err) == ST_OK, "%s", err.msg);
        ck_assert_int_eq(st_png_read(path, 0, &back, NULL, &err), ST_OK);
        ck_assert(back.c == c && back.h == 21 && back.w == 34);
        ck_assert_int_eq(memcmp(a.data, back.data, (size_t)c * 21 * 34), 0);
        st_image_free(&back);
        /* overwrite in place works; no temp file stays behind */
        ck_assert_int_eq(st_png_write(path, &a, &err), ST_OK);
        snprintf(path, sizeof path, "%s/missing-dir/x.png", dir);
        ck_assert_int_eq(st_png_write(path, &a, &err), ST_ERR_IO);
        ck_assert_msg(strstr(err.msg, "missing-dir"), "%s", err.msg);
        st_image_free(&a);
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        ck_assert_msg(!strstr(e->d_name, ".tmp-"), "temp file left: %s", e->d_name);
        files += e->d_name[0] != '.';
    }
    closedir(d);
    ck_assert_int_eq(files, 2);
}
END_TEST

/* The committed fixture folder: every file's problem kind (the README lists them). */
START_TEST(test_fixture_folder) {
    static const struct {
        const char *name;
        st_img_problem p;
    } want[] = {{"empty.png", ST_IMG_EMPTY},     {"truncated.png", ST_IMG_TRUNCATED},
                {"text.png", ST_IMG_NOT_PNG},    {"badcrc.png", ST_IMG_CRC},
                {"photo.jpg", ST_IMG_UNSUPPORTED}, {"dangling.png", ST_IMG_UNREADABLE},
                {"good.png", ST_IMG_OK}};
    char dir[512], path[800];
    stt_source_path(dir, sizeof dir, "tests/fixtures/bad_images");
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README") == 0) continue;
        size_t k = 0;
        while (k < 7 && strcmp(want[k].name, e->d_name) != 0) k++;
        ck_assert_msg(k < 7, "unexpected fixture %s: add it to the test and the README", e->d_name);
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (want[k].p == ST_IMG_OK) expect_ok(path, 8, 8);
        else expect_problem(path, want[k].p);
        seen++;
    }
    closedir(d);
    ck_assert_int_eq(seen, 7);
}
END_TEST

Suite *png_suite(void) {
    Suite *s = suite_create("png");
    TCase *tc = tcase_create("png");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_decode_all_formats);
    tcase_add_test(tc, test_broken_files);
    tcase_add_test(tc, test_random_bytes);
    tcase_add_test(tc, test_write_round_trip);
    tcase_add_test(tc, test_fixture_folder);
    suite_add_tcase(s, tc);
    return s;
}
