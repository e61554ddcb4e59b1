/*
 * tolerances.h: every (atol, rtol) pair the CPU-vs-CUDA tests use, with the reason for each.
 * EXPECT_CLOSE passes when |got - ref| <= atol + rtol |ref| per element; FLAME_TOL_SCALE in the
 * environment scales all of them (an unusual GPU). Gradient pairs (TOL_*_GRAD) are applied with
 * atol multiplied by the largest |ref| of the tensor (gradients have no natural absolute scale).
 *
 * Sources of difference between the backends, everything else being the same code or the same
 * float operations in the same order:
 *   (a) GEMM summation order: OpenBLAS blocks the k-sum; cuBLAS and the fused kernel (16-wide
 *       k-chunks, one running sum per output) sum in other orders. Error ~ k * 2^-24 * sum |terms|;
 *       k is the layer's input width (23 .. 365 at the configured sizes, 256 hidden).
 *   (b) device libm: expf/sinf/cosf/tanhf/log1pf are within 2 ulp of glibc, which changes mish and
 *       the time embedding in the last bit; double log/sin/erfc in the Philox transforms are within
 *       1-2 ulp, which reaches a float draw only when it sits on a rounding boundary.
 *   (c) FMA contraction: nvcc contracts a*b+c in element-wise kernels (the CPU build does not);
 *       Adam and Polyak use explicit _rn intrinsics and are the CPU's arithmetic bit for bit.
 *   (d) reduction order of double sums (losses, metrics): block trees instead of a running sum.
 *   (e) TF32 (backend.precision tf32): cuBLAS rounds GEMM inputs to a 10-bit mantissa,
 *       relative error ~ 2^-11 per product, ~1e-3 per output after a 256-long sum.
 * No --use_fast_math anywhere.
 */
#ifndef FLAME_TOLERANCES_H
#define FLAME_TOLERANCES_H

typedef struct {
    double atol, rtol;
} FlameTol;

/* ---- level 1: device MLP vs src/nn/mlp.c (tests/gpu/test_mlp_cuda.cu) */
/* forward outputs of 3 x 256 mish nets, O(1) values: (a) over k <= 365, (b) in mish */
static const FlameTol TOL_MLP_FWD = {2e-5, 1e-4};
/* JVP tangents: two GEMM chains (primal, tangent) and mish' at the primal: (a), (b) twice */
static const FlameTol TOL_MLP_JVP = {5e-5, 2e-4};
/* parameter / input gradients (atol x max|ref|): dW sums over the rows (up to 2048): (a) */
static const FlameTol TOL_MLP_GRAD = {1e-5, 1e-3};
/* TF32 forward and gradient (atol x max|ref| for gradients): (e) */
static const FlameTol TOL_MLP_FWD_TF32 = {5e-3, 1e-2};
static const FlameTol TOL_MLP_GRAD_TF32 = {5e-3, 2e-2};

/* ---- level 2: stage ops from identical state, batch and draws (tests/gpu/test_stages_cuda.c) */
/* Philox normals, uniforms and the noisy action / times built from them: same float formulas,
   (b) only on rounding boundaries of the double transforms */
static const FlameTol TOL_DRAWS = {1e-6, 1e-6};
/* truncated-normal candidate draws: double inverse CDF in log space, (b) through log/exp/erfc
   and four Newton steps; the float result moves by at most an ulp or two */
static const FlameTol TOL_TRUNC = {2e-6, 1e-5};
/* particle and candidate scores min(Q1, Q2): a critic forward, (a) + (b) */
static const FlameTol TOL_SCORE = {5e-5, 2e-4};
/* candidate scores on tensor cores in TF32 (backend.scoring=fused, precision tf32): (e) in every
   layer of the critic, as for a TF32 forward */
static const FlameTol TOL_SCORE_TF32 = {5e-3, 1e-2};
/* best-of-N actions (and a' = a* + noise): the policy after N sampling steps; FLAME-R's 20 Euler
   steps accumulate (a) twenty times */
static const FlameTol TOL_ACTION = {1e-4, 1e-4};
static const FlameTol TOL_ACTION_R = {5e-4, 5e-4};
/* entropy estimates H(s'): sums of up to D JVP traces (clipped at 10), O(10) values; the exact
   estimator's log-determinant of I - J amplifies J's error by cond(I - J); FLAME-R's ode estimator
   integrates 20 steps of traces and states */
static const FlameTol TOL_ENTROPY = {2e-3, 2e-4};
static const FlameTol TOL_ENTROPY_ODE = {2e-2, 2e-3};
/* TD targets y (O(1)): the target critics on a' (a) (b); the test adds gamma alpha times the
   entropy tolerance of the estimator for the alpha H term */
static const FlameTol TOL_TARGET = {2e-4, 2e-4};
/* softmax weights over K candidates: relative error of a weight ~ |dq| / T with T >= e^0 */
static const FlameTol TOL_WEIGHTS = {1e-6, 5e-4};
/* weighted tangent v-bar: sums of w_k (eps_k - a-hat_k) whose terms reach ~2t/(1-t) (hundreds
   for t near 1), so the weights' relative error scales with the largest term: atol is applied
   times max|v-bar| of the batch; effective sample size: from the weights */
static const FlameTol TOL_VBAR = {2e-5, 5e-4};
static const FlameTol TOL_ESS = {1e-3, 5e-4};
/* gradients of one stage (atol x max|ref|): critic loss over B rows, MeanFlow JVP + backward,
   -Q term through the target critics: (a) in forward, tangent and backward GEMMs */
static const FlameTol TOL_STAGE_GRAD = {5e-5, 2e-3};
/* A row whose twin-critic values are within 1e-4 of each other may take the other critic's
   gradient in the -Q term (FLAME-M) or the SAC actor: its contribution changes by O(1/B), so with
   such a near-tie the policy gradient is compared by relative norm instead, within this bound */
static const double TOL_STAGE_GRAD_NORM_TIE = 3e-2;
/* scalar losses of one stage (double sums of fp32 terms): (a) in every term, (d) */
static const FlameTol TOL_STAGE_LOSS = {1e-5, 5e-4};
/* one Adam / Polyak / alpha step applied to the same gradient: (c) says bit-identical; the bias
   corrections 1 - beta^t come from device pow (1 ulp in double, seldom visible in float) */
static const FlameTol TOL_ADAM = {1e-8, 1e-6};
/* Stage ops with backend.precision tf32 (cuBLAS kernels): every tolerance above of a quantity that
   passes through a GEMM (scores, actions, entropies, targets, weights, v-bar, ESS, gradients,
   losses) is multiplied by this factor: (e) replaces (a), and level 1 measures that ratio
   (TOL_MLP_FWD_TF32 / TOL_MLP_FWD is 250 in atol, 100 in rtol). Draws, truncated draws, the Adam
   and Polyak steps on a given gradient and the alpha step on given entropies involve no GEMM and
   keep their fp32 tolerances. */
static const double TOL_TF32_STAGE_FACTOR = 100;
/* ... the policy gradient under TF32, by relative norm: TOL_MLP_GRAD_TF32's 2e-2 for one
   backward pass, here after a forward, a JVP and a backward, plus a possible twin-critic flip on
   a near-tie row (TOL_STAGE_GRAD_NORM_TIE, rows within 1e-4 x the factor count as near-ties) */
static const double TOL_STAGE_GRAD_NORM_TF32 = 5e-2;

/* ---- level 3: whole updates from the same state (tests/gpu/test_update_cuda.c) */
/* losses at every one of 10 updates: each update's differences feed the next through Adam */
static const FlameTol TOL_UPDATE_LOSS = {1e-4, 2e-3};
/* critic and target parameters after 10 updates with Adam eps = 1e-3 (continuous in the
   gradient): per-step differences of ~1e-6 * lr / eps accumulate over 10 steps, well below
   lr = 3e-4 */
static const FlameTol TOL_UPDATE_PARAMS = {3e-5, 1e-3};
/* policy and EMA policy in the same runs, by displacement (below): the -Q term (FLAME-M) and the
   SAC actor take min(Q1, Q2) per row, and a row whose two values lie within the backends'
   rounding difference takes the other critic's gradient, an O(1/B) change of a few gradient
   elements (rare: ~1e-5 per row) */
static const double TOL_UPDATE_DISPLACEMENT_EPS = 1e-2;
/* With the default eps = 1e-8 Adam's first steps are sign(g) * lr: a gradient element below the
   summation-order noise (a) may take the other sign on the two backends and move by 2 lr. So
   parameters are compared by their displacement: ||(p_gpu - p0) - (p_cpu - p0)|| over
   ||p_cpu - p0|| per network must stay under this (a handful of flipped elements in 1e5 give
   ~1e-2; a wrong operation gives O(1)). */
static const double TOL_UPDATE_DISPLACEMENT = 0.05;
/* TF32 whole updates: (e) in every GEMM, compared by displacement and losses only */
static const double TOL_UPDATE_DISPLACEMENT_TF32 = 0.25;
static const FlameTol TOL_UPDATE_LOSS_TF32 = {5e-3, 5e-2};

/* ---- golden parity with the authors' reference update (tests/test_reference_golden.c, CPU;
   tests/gpu/test_golden_cuda.c, CUDA). Our CPU update and the reference's jitted XLA CPU update run
   on identical inputs, parameters, Adam state and draws; they differ by
     (f) summation order: OpenBLAS's blocked GEMMs and our double-precision reductions against
         Eigen's GEMMs and XLA's float32 reduction trees;
     (g) XLA's code generation: a*b+c contracted into FMA (Adam's moments, the noisy actions, the
         time mapping) and its own exp/log/tanh/erf approximations; mish is x tanh(softplus x)
         there, our single-exp form here (activation.h);
   each ~1e-7 relative per operation. Through three 32-wide layers, the best-of-N choice, the
   softmax over K candidates and the entropy estimator's JVPs a value moves by ~1e-6 of its scale
   (measured: <= 1.7e-6). Comparisons take atol times the quantity's largest |ref| (its scale). */
/* values: TD target, next action, best particle, entropy, noisy action, times, candidate weights,
   v-bar, log pi: about 5x the measured error */
static const FlameTol TOL_GOLDEN_VALUE = {1e-5, 1e-5};
/* gradients: sums over the 64 batch rows of products of such values; the per-element relative
   error of small entries is large, so elements are held to atol x the tensor's largest |ref| */
static const FlameTol TOL_GOLDEN_GRAD = {2e-5, 1e-3};
/* Adam moments after the step: m takes 0.1 g and v 0.001 g^2 on top of the same stored moments,
   so they inherit the gradient's error scaled down */
static const FlameTol TOL_GOLDEN_MOMENT = {1e-5, 1e-4};
/* parameters, EMA policy and target critics, by the update's change: |ours - ref| <= atol x the
   tensor's largest change (~lr) + rtol |ref|, rtol = 2 float ulps for the rounding of the stored
   parameter itself (a step of 3e-4 on a weight of 0.3 is resolved to 1e-4 of itself) */
static const FlameTol TOL_GOLDEN_STEP = {1e-5, 2.4e-7};
/* scalars: losses (double means of fp32 terms), log alpha, alpha: relative */
static const FlameTol TOL_GOLDEN_SCALAR = {1e-5, 0};
/* The CUDA backend on the same files: the CPU's differences above plus (a)-(d) of the CUDA
   parity tests (cuBLAS / fused-kernel GEMM order, device libm, FMA contraction in element-wise
   kernels, block reductions), whose stage tolerances above are 5-20x the CPU's golden ones; the
   same factor here (not yet measured on a GPU). The best-of-N choices must still agree: the
   generator keeps every row's two best particles 2e-5 apart (relative). */
static const FlameTol TOL_GOLDEN_CUDA_VALUE = {1e-4, 1e-4};
static const FlameTol TOL_GOLDEN_CUDA_GRAD = {2e-4, 2e-3};
static const FlameTol TOL_GOLDEN_CUDA_MOMENT = {1e-4, 1e-3};
static const FlameTol TOL_GOLDEN_CUDA_STEP = {1e-4, 2.4e-7};
static const FlameTol TOL_GOLDEN_CUDA_SCALAR = {1e-4, 0};

#endif
