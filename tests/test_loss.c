/* The softmax cross-entropy loss (st_ops.h) against hand-computed values, and its
 * stability on logits far outside exp's range. Its gradient by finite differences:
 * test_gradcheck.c. */
#include <check.h>
#include <math.h>
#include <stdint.h>

#include "st_ops.h"

START_TEST(test_softmax_xent_hand_computed) {
    const float logits[6] = {1, 2, 3, /* label 2 */ 0, 0, 0 /* label 0 */};
    const int32_t labels[2] = {2, 0};
    float probs[6];
    float loss = st_softmax_xent_forward(probs, logits, labels, 2, 3);
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    double expect = ((lse - 3) + log(3.0)) / 2;
    ck_assert_double_eq_tol(loss, expect, 1e-6);
    for (int c = 0; c < 3; c++) {
        ck_assert_float_eq_tol(probs[c], exp(c + 1.0 - lse), 1e-6);
        ck_assert_float_eq_tol(probs[3 + c], 1.0 / 3, 1e-6);
    }
    float d[6] = {1, 1, 1, 1, 1, 1};
    st_softmax_xent_backward(d, probs, labels, 2, 3, 2.0f);
    /* dlogits += (p - onehot) / N * scale, N = 2, scale = 2 */
    for (int i = 0; i < 6; i++) {
        double onehot = (i == 2 || i == 3) ? 1 : 0;
        ck_assert_float_eq_tol(d[i], 1 + (probs[i] - onehot), 1e-6);
    }
}
END_TEST

START_TEST(test_softmax_xent_large_logits) {
    const float logits[3] = {1000, 0, -1000};
    float probs[3];
    int32_t lab = 0;
    float loss = st_softmax_xent_forward(probs, logits, &lab, 1, 3);
    ck_assert(isfinite(loss));
    ck_assert_float_eq_tol(loss, 0.0f, 1e-6);
    ck_assert_float_eq_tol(probs[0], 1.0f, 1e-6);
    lab = 2;
    loss = st_softmax_xent_forward(probs, logits, &lab, 1, 3);
    ck_assert_float_eq_tol(loss, 2000.0f, 1e-2);
    for (int i = 0; i < 3; i++) ck_assert(isfinite(probs[i]));
}
END_TEST

Suite *loss_suite(void) {
    Suite *s = suite_create("loss");
    TCase *tx = tcase_create("softmax_xent");
    tcase_set_timeout(tx, 60);
    tcase_add_test(tx, test_softmax_xent_hand_computed);
    tcase_add_test(tx, test_softmax_xent_large_logits);
    suite_add_tcase(s, tx);
    return s;
}
