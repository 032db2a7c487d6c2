/* test_nan.c: NaN goes through the activations as it does in PyTorch (issue 12,
 * defect 4): torch.relu keeps NaN (a model with one NaN weight must give NaN, not
 * quietly clip it to 0), LeakyReLU, GELU, SiLU and Hardswish too, and their gradients at NaN, 0, -0
 * and either sign equal torch's. Expected values printed by torch 2 for the input
 * [nan, -0., 0., -1., 2.] and an output gradient of 3:
 *   relu        [nan, -0., 0., 0., 2.]          grad [3, 0, 0, 0, 3]
 *   leaky 0.1   [nan, -0., 0., -0.1, 2.]        grad [0.3, 0.3, 0.3, 0.3, 3]
 *   gelu        [nan, 0., 0., -0.1587, 1.9545]  grad [nan, 1.5, 1.5, -0.2499, 3.2557]
 *   silu        [nan, -0., 0., -0.2689, 1.7616] grad [nan, 1.5, 1.5, 0.2170, 3.2724]
 *   hardswish   [nan, -0., 0., -0.3333, 1.6667] grad [3, 1.5, 1.5, 0.5, 3.5] */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnnlab.h"
#include "harness.h"

enum { COUNT = 5 };

static bool same_value(double got, double want, double tol) {
    if (isnan(want)) return isnan(got);
    if (want == 0 && got == 0) return signbit(got) == signbit(want);
    return fabs(got - want) <= tol;
}

static void check(const char *what, cl_act_kind kind, float slope, const double *want_y,
                  const double *want_dx, bool check_zero_sign) {
    t_begin("%s: NaN, -0 and 0 forward and backward as torch", what);
    const cl_real x[COUNT] = {NAN, -0.0f, 0.0f, -1.0f, 2.0f};
    cl_real dout[COUNT];
    for (int i = 0; i < COUNT; i++) dout[i] = 3;
    cl_model *m = cl_model_new((cl_shape){COUNT, 1, 1});
    cl_activation(m, cl_input(m), kind, slope);
    if (cl_model_compile(m, (cl_compile_args){.max_batch = 1, .threads = 1, .input_grad = true}) !=
        CL_OK) {
        t_fail("compile: %s", cl_model_error(m));
        cl_model_free(m);
        return;
    }
    const cl_real *y = cl_model_forward(m, x, 1, true);
    for (int i = 0; y && i < COUNT; i++)
        if (!same_value(y[i], want_y[i], 1e-4) && (check_zero_sign || want_y[i] != 0 || y[i] != 0))
            t_fail("%s(%g) = %g, torch gives %g", what, x[i], y[i], want_y[i]);
    if (!y || cl_model_backward(m, dout) != CL_OK) {
        t_fail("forward or backward failed");
    } else {
        const cl_real *dx = cl_model_input_grad(m);
        for (int i = 0; i < COUNT; i++)
            if (!same_value(dx[i], want_dx[i], 1e-4))
                t_fail("d%s/dx at %g (times 3) = %g, torch gives %g", what, x[i], dx[i], want_dx[i]);
    }
    cl_model_free(m);
}

int main(void) {
    const double relu_y[] = {NAN, -0.0, 0.0, 0.0, 2.0}, relu_dx[] = {3, 0, 0, 0, 3};
    const double leaky_y[] = {NAN, -0.0, 0.0, -0.1, 2.0}, leaky_dx[] = {0.3, 0.3, 0.3, 0.3, 3};
    const double gelu_y[] = {NAN, 0.0, 0.0, -0.158655, 1.954500},
                 gelu_dx[] = {NAN, 1.5, 1.5, -0.249887, 3.255695};
    check("relu", CL_ACT_RELU, 0, relu_y, relu_dx, true);
    check("leakyrelu", CL_ACT_LEAKY_RELU, 0.1f, leaky_y, leaky_dx, true);
    /* GELU(-0) is -0 * 0.5 = -0 here and 0 in torch: the sign of a zero is not kept */
    check("gelu", CL_ACT_GELU, 0, gelu_y, gelu_dx, false);
    const double silu_y[] = {NAN, -0.0, 0.0, -0.268941, 1.761594},
                 silu_dx[] = {NAN, 1.5, 1.5, 0.216988, 3.272353};
    const double hsw_y[] = {NAN, -0.0, 0.0, -1.0 / 3, 5.0 / 3}, hsw_dx[] = {3, 1.5, 1.5, 0.5, 3.5};
    check("silu", CL_ACT_SILU, 0, silu_y, silu_dx, true);
    check("hardswish", CL_ACT_HARDSWISH, 0, hsw_y, hsw_dx, true);
    return t_finish();
}
