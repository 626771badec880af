/* The eval() language of recipes, through st_recipe_eval (the same evaluator a recipe's
 * fields and variables go through): Python's precedence and float semantics, the allowed
 * calls, variables referring to variables, and every way an expression can be wrong. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_recipe.h"

static double ev_ok(const char *expr, const char *vars) {
    st_error err = {0};
    double v = NAN;
    st_status s = st_recipe_eval(expr, vars, &v, &err);
    ck_assert_msg(s == ST_OK, "eval(%s) failed: %s", expr, err.msg);
    return v;
}

#define EV_EQ(expr, vars, want)                                                                   \
    do {                                                                                          \
        double got_ = ev_ok(expr, vars);                                                          \
        ck_assert_msg(fabs(got_ - (double)(want)) <= 1e-12 * fmax(1, fabs((double)(want))), "eval(%s) = %.17g, want %.17g", \
                      expr, got_, (double)(want));                                                \
    } while (0)

/* The expression fails with ST_ERR_INPUT and a one-line message holding every word. */
static void ev_bad(const char *expr, const char *vars, const char *w1, const char *w2) {
    st_error err = {0};
    double v = 0;
    st_status s = st_recipe_eval(expr, vars, &v, &err);
    ck_assert_msg(s == ST_ERR_INPUT, "eval(%s) should fail, gave %g", expr, v);
    ck_assert_msg(!strchr(err.msg, '\n'), "message is not one line: %s", err.msg);
    ck_assert_msg(strstr(err.msg, w1), "eval(%s): '%s' not in: %s", expr, w1, err.msg);
    if (w2) ck_assert_msg(strstr(err.msg, w2), "eval(%s): '%s' not in: %s", expr, w2, err.msg);
}

START_TEST(test_eval_precedence) {
    EV_EQ("1 + 2 * 3", NULL, 7);
    EV_EQ("(1 + 2) * 3", NULL, 9);
    EV_EQ("10 - 4 - 3", NULL, 3);       /* left-associative */
    EV_EQ("2 * 3 / 4", NULL, 1.5);
    EV_EQ("2 ** 3 ** 2", NULL, 512);    /* right-associative */
    EV_EQ("-2 ** 2", NULL, -4);         /* ** binds tighter than a unary minus on its left */
    EV_EQ("(-2) ** 2", NULL, 4);
    EV_EQ("2 ** -1", NULL, 0.5);        /* ...but the exponent may carry a sign */
    EV_EQ("-2 ** -2", NULL, -0.25);
    EV_EQ("+-+3", NULL, -3);
    EV_EQ("- - 3", NULL, 3);
    EV_EQ("2 * -3", NULL, -6);
    EV_EQ("1 - -1", NULL, 2);
    EV_EQ("100 * 0.9 * 0.8", NULL, 100 * 0.9 * 0.8);
    EV_EQ(".5 + 1.", NULL, 1.5);
    EV_EQ("2e2 + 1E-2 + 3e+1", NULL, 230.01);
    EV_EQ("  7  ", NULL, 7);
    EV_EQ("2*3+4*5", NULL, 26);
    EV_EQ("2 * 3 % 4", NULL, 2);        /* * and % share a level, left to right */
    EV_EQ("2 + 3 // 2", NULL, 3);
}
END_TEST

START_TEST(test_eval_floor_div_and_mod) {
    /* Python: // floors, % takes the divisor's sign, both on floats too. */
    EV_EQ("7 // 2", NULL, 3);
    EV_EQ("-7 // 2", NULL, -4);
    EV_EQ("7 // -2", NULL, -4);
    EV_EQ("-7 // -2", NULL, 3);
    EV_EQ("7.5 // 2", NULL, 3);
    EV_EQ("-0.5 // 1", NULL, -1);
    EV_EQ("7 % 3", NULL, 1);
    EV_EQ("-7 % 3", NULL, 2);
    EV_EQ("7 % -3", NULL, -2);
    EV_EQ("-7 % -3", NULL, -1);
    EV_EQ("5.5 % 2", NULL, 1.5);
    EV_EQ("-5.5 % 2", NULL, 0.5);
    EV_EQ("1 / 4", NULL, 0.25); /* true division, also on integers */
    EV_EQ("240 // 4 * 0.5", NULL, 30);
}
END_TEST

START_TEST(test_eval_functions) {
    EV_EQ("abs(-3)", NULL, 3);
    EV_EQ("abs(2 - 5) * 2", NULL, 6);
    EV_EQ("int(2.9)", NULL, 2);
    EV_EQ("int(-2.9)", NULL, -2); /* truncates toward zero */
    EV_EQ("float(3)", NULL, 3);
    EV_EQ("min(3, 1, 2)", NULL, 1);
    EV_EQ("max(1, 5, 2)", NULL, 5);
    EV_EQ("max(-1, -2)", NULL, -1);
    EV_EQ("min(max(0.1, 0.5), 0.3)", NULL, 0.3);
    /* round: half to even, like Python 3. */
    EV_EQ("round(2.5)", NULL, 2);
    EV_EQ("round(3.5)", NULL, 4);
    EV_EQ("round(-2.5)", NULL, -2);
    EV_EQ("round(0.5)", NULL, 0);
    EV_EQ("round(1.5)", NULL, 2);
    EV_EQ("round(2.6)", NULL, 3);
    EV_EQ("round(0.125, 2)", NULL, 0.12);
    EV_EQ("round(2.675, 2)", NULL, 2.67); /* 2.675 is 2.67499999... in binary, as in Python */
    EV_EQ("round(1234, -2)", NULL, 1200);
    EV_EQ("round(100 / 3, 1)", NULL, 33.3);
    EV_EQ("round(0.375, 2)", NULL, 0.38); /* an exact tie: to even */
    EV_EQ("round(-1.005, 2)", NULL, -1); /* -1.00499999... */
    EV_EQ("round(1250, -2)", NULL, 1200);
    EV_EQ("round(1350, -2)", NULL, 1400);
    EV_EQ(" max ( 1 , 2 ) ", NULL, 2);
}
END_TEST

START_TEST(test_eval_variables) {
    const char *v = "{\"num_epochs\": 240, \"frac\": 0.25, \"start\": \"eval(num_epochs * frac)\","
                    " \"end\": \"eval(start + 10)\", \"flag\": true}";
    EV_EQ("num_epochs", v, 240);
    EV_EQ("start", v, 60);
    EV_EQ("end * 2", v, 140);                /* end -> start -> num_epochs, frac */
    EV_EQ("num_epochs - end", v, 170);
    EV_EQ("flag + 1", v, 2);                  /* a boolean is 0 / 1 in arithmetic, as in Python */
    EV_EQ("max(start, end) // 7", v, 10);
    /* Names: letters, digits, underscores. */
    EV_EQ("_x1 * 2", "{\"_x1\": 4}", 8);
}
END_TEST

START_TEST(test_eval_cycles_and_unknown_names) {
    ev_bad("a", "{\"a\": \"eval(b)\", \"b\": \"eval(a)\"}", "eval cycle: a -> b -> a", NULL);
    ev_bad("b + 1", "{\"a\": \"eval(b)\", \"b\": \"eval(a)\"}", "eval cycle: b -> a -> b", NULL);
    ev_bad("a", "{\"a\": \"eval(a + 1)\"}", "eval cycle: a -> a", NULL);
    ev_bad("x", "{\"x\": \"eval(y)\", \"y\": \"eval(z * 2)\", \"z\": \"eval(x)\"}", "x -> y -> z -> x", NULL);
    ev_bad("nope + 1", "{\"alpha\": 1, \"beta\": 2}", "unknown variable 'nope' (variables: alpha, beta)", NULL);
    ev_bad("num_epoch * 2", "{\"num_epochs\": 1}", "unknown variable 'num_epoch' (did you mean 'num_epochs'?)", NULL);
    ev_bad("nope", NULL, "unknown variable 'nope'", "(variables: none)");
    /* An unknown name inside a variable names that variable. */
    ev_bad("a", "{\"a\": \"eval(b * 2)\"}", "variable a", "unknown variable 'b'");
    /* A chain deeper than the limit is an error, not a stack overflow. */
    char vars[8192] = "{";
    for (int i = 0; i < 80; i++)
        snprintf(vars + strlen(vars), sizeof vars - strlen(vars), "%s\"v%d\": \"eval(v%d + 1)\"", i ? ", " : "",
                 i, i + 1);
    strcat(vars, ", \"v80\": 0}");
    ev_bad("v0", vars, "more than", "deep");
    /* ...while a chain within it resolves. */
    EV_EQ("v40", vars, 40);
}
END_TEST

START_TEST(test_eval_bad_syntax) {
    ev_bad("", NULL, "empty expression", NULL);
    ev_bad("   ", NULL, "empty expression", NULL);
    ev_bad("1 +", NULL, "unexpected end of expression", NULL);
    ev_bad("(1 + 2", NULL, "expected ')'", NULL);
    ev_bad("1 + 2)", NULL, "unexpected ')'", NULL);
    ev_bad("1 2", NULL, "unexpected '2'", "character 3");
    ev_bad("2 * * 3", NULL, "unexpected '*'", NULL);
    ev_bad("2 *** 3", NULL, "unexpected '*'", NULL);
    ev_bad("1..2", NULL, "invalid number", NULL);
    ev_bad("3abc", NULL, "invalid number", NULL);
    ev_bad("1e", NULL, "invalid number", NULL);
    ev_bad("x.y", "{\"x\": 1}", "attribute access", NULL);
    ev_bad("exp(1)", NULL, "function 'exp' is not allowed", "abs float int min max round");
    ev_bad("__import__('os')", NULL, "function '__import__' is not allowed", NULL);
    ev_bad("eval(1)", NULL, "function 'eval' is not allowed", NULL);
    ev_bad("[1, 2]", NULL, "only numbers", NULL);
    ev_bad("'abc'", NULL, "only numbers", NULL);
    ev_bad("1 if 2 else 3", NULL, "unexpected 'if'", NULL);
    ev_bad("a = 1", "{\"a\": 1}", "unexpected '='", NULL);
    ev_bad("min(1)", NULL, "min() needs at least 2 arguments", NULL);
    ev_bad("max()", NULL, "max() needs at least 2 arguments", NULL);
    ev_bad("abs(1, 2)", NULL, "abs() takes exactly one argument", NULL);
    ev_bad("round(1, 2, 3)", NULL, "round() takes 1 or 2 arguments", NULL);
    ev_bad("round(1, 0.5)", NULL, "ndigits", NULL);
    ev_bad("min(1 2)", NULL, "expected ',' or ')'", NULL);
    /* Strings and lists are values, but not numbers. */
    ev_bad("m + 1", "{\"m\": \"2:4\"}", "'+' needs a number", "'2:4'");
    ev_bad("-m", "{\"m\": \"unstructured\"}", "unary '-' needs a number", NULL);
    ev_bad("abs(l)", "{\"l\": [1, 2]}", "abs() needs a number", "a list");
    ev_bad("m", "{\"m\": \"2:4\"}", "not a number", NULL);
    /* Nesting: deep enough for any real use, bounded for hostile input. */
    char deep[1024] = "";
    for (int i = 0; i < 60; i++) strcat(deep, "(");
    strcat(deep, "1");
    for (int i = 0; i < 60; i++) strcat(deep, ")");
    EV_EQ(deep, NULL, 1);
    char deeper[4096] = "";
    for (int i = 0; i < 1000; i++) strcat(deeper, "(");
    strcat(deeper, "1");
    ev_bad(deeper, NULL, "nested more than", NULL);
    memset(deeper, '-', 3000);
    strcpy(deeper + 3000, "1");
    ev_bad(deeper, NULL, "nested more than", NULL);
}
END_TEST

START_TEST(test_eval_arithmetic_errors) {
    /* Python raises on these; a silent inf or nan would become an epoch count. */
    ev_bad("1 / 0", NULL, "division by zero", NULL);
    ev_bad("1 // 0", NULL, "division by zero", NULL);
    ev_bad("1 % 0", NULL, "division by zero", NULL);
    ev_bad("1 / (2 - 2)", NULL, "division by zero", NULL);
    ev_bad("x / 0.0", "{\"x\": 3}", "division by zero", NULL);
    ev_bad("0 ** -1", NULL, "division by zero", NULL);
    ev_bad("(-8) ** (1 / 3)", NULL, "not a real number", NULL);
    ev_bad("10 ** 400", NULL, "overflow", NULL);
    ev_bad("1e308 * 10", NULL, "overflow", NULL);
    ev_bad("1e400", NULL, "overflow", NULL);
    /* Allowed edge cases. */
    EV_EQ("0 ** 0", NULL, 1);
    EV_EQ("(-8) ** 2", NULL, 64);
    EV_EQ("(-2) ** -1", NULL, -0.5);
}
END_TEST

START_TEST(test_eval_messages_name_the_expression) {
    st_error err = {0};
    double v;
    ck_assert_int_eq(st_recipe_eval("a +", "{\"a\": 1}", &v, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "eval(a +)"), "%s", err.msg);
    ck_assert_int_eq(err.code, ST_ERR_INPUT);
    /* Bad JSON for the variables is an input error too. */
    ck_assert_int_eq(st_recipe_eval("1", "{\"a\": [1,", &v, &err), ST_ERR_INPUT);
    ck_assert_msg(strstr(err.msg, "invalid JSON"), "%s", err.msg);
}
END_TEST

Suite *recipe_eval_suite(void) {
    Suite *s = suite_create("recipe_eval");
    TCase *tc = tcase_create("eval");
    tcase_add_test(tc, test_eval_precedence);
    tcase_add_test(tc, test_eval_floor_div_and_mod);
    tcase_add_test(tc, test_eval_functions);
    tcase_add_test(tc, test_eval_variables);
    tcase_add_test(tc, test_eval_cycles_and_unknown_names);
    tcase_add_test(tc, test_eval_bad_syntax);
    tcase_add_test(tc, test_eval_arithmetic_errors);
    tcase_add_test(tc, test_eval_messages_name_the_expression);
    suite_add_tcase(s, tc);
    return s;
}
