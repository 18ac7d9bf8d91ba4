//! DOP853: the explicit Runge–Kutta method of order 8 by Dormand & Prince with the error
//! estimators of orders 5 and 3 and the 7th-order dense output, after Hairer & Wanner's
//! `dop853.f` (version of 2002; E. Hairer, S. P. Nørsett, G. Wanner, *Solving Ordinary
//! Differential Equations I*, 2nd ed., Springer 1993, §II.6 and §II.10).
//!
//! # Method
//! For `x' = f(t, x)` and a step `h` from `(t, y)`, with stages
//!
//! ```text
//! k_1 = f(t, y)                                   (= FSAL value of the previous step)
//! k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j),      i = 2..12    (c_12 = 1)
//! y_new = y + h Σ_i b_i k_i                       (order 8; b_2..b_5 = 0)
//! ```
//!
//! Local error estimate (scaled with `sk_i = atol + rtol max(|y_i|, |y_new,i|)`):
//!
//! ```text
//! e5_i = Σ_j er_j k_j,   e3_i = Σ_j b_j k_j − (bhh1 k_1 + bhh2 k_9 + bhh3 k_12)
//! E5 = Σ_i (e5_i/sk_i)², E3 = Σ_i (e3_i/sk_i)²
//! err = |h| E5 / sqrt(n (E5 + 0.01 E3))
//! ```
//!
//! i.e. an RMS norm of an error that behaves like `err5²/sqrt(err5² + 0.01 err3²)`: 5th-order
//! for small steps, with the 3rd-order estimate guarding large ones.
//!
//! Dense output (7th order) on `s = (t* − t)/h ∈ [0, 1]`, after three extra stages
//! `k_14, k_15, k_16` at `c = 0.1, 0.2, 7/9` (which also use `k_13 = f(t+h, y_new)`):
//!
//! ```text
//! r1 = y, r2 = y_new − y, r3 = h k_1 − r2, r4 = r2 − h k_13 − r3,
//! r5..r8 = h Σ_j d_{4..7, j} k_j                      (j ∈ {1, 6..16})
//! x(t + s h) = r1 + s (r2 + (1−s) (r3 + s (r4 + (1−s) (r5 + s (r6 + (1−s) (r7 + s r8))))))
//! ```
//!
//! The three extra stages are computed only when an output time falls strictly inside an
//! accepted step ([`Dop853::prepare_dense`]).
//!
//! Cost: 12 evaluations per attempted step (11 + 1 FSAL), plus 3 for a step with dense output.
//! Controller (Hairer's defaults): `expo1 = 1/8`, `beta = 0`, `fac1 = 0.333`, `fac2 = 6`,
//! `safe = 0.9`; initial step by Hairer's `HINIT` with order 8.
//!
//! Coefficients are those of `dop853.f` (identical to SciPy's `dop853_coefficients.py`).

// The coefficients are kept digit for digit as published (30 significant digits).
#![allow(clippy::excessive_precision)]

use super::adaptive::{hinit, AdaptiveStepper, StepControl};
use crate::dynamics::System;

const C2: f64 = 0.526001519587677318785587544488e-01;
const C3: f64 = 0.789002279381515978178381316732e-01;
const C4: f64 = 0.118350341907227396726757197510e+00;
const C5: f64 = 0.281649658092772603273242802490e+00;
const C6: f64 = 0.333333333333333333333333333333e+00;
const C7: f64 = 0.25e+00;
const C8: f64 = 0.307692307692307692307692307692e+00;
const C9: f64 = 0.651282051282051282051282051282e+00;
const C10: f64 = 0.6e+00;
const C11: f64 = 0.857142857142857142857142857142e+00;
const C14: f64 = 0.1e+00;
const C15: f64 = 0.2e+00;
const C16: f64 = 0.777777777777777777777777777778e+00;

const B1: f64 = 5.42937341165687622380535766363e-2;
const B6: f64 = 4.45031289275240888144113950566e0;
const B7: f64 = 1.89151789931450038304281599044e0;
const B8: f64 = -5.8012039600105847814672114227e0;
const B9: f64 = 3.1116436695781989440891606237e-1;
const B10: f64 = -1.52160949662516078556178806805e-1;
const B11: f64 = 2.01365400804030348374776537501e-1;
const B12: f64 = 4.47106157277725905176885569043e-2;

const BHH1: f64 = 0.244094488188976377952755905512e+00;
const BHH2: f64 = 0.733846688281611857341361741547e+00;
const BHH3: f64 = 0.220588235294117647058823529412e-01;

const ER1: f64 = 0.1312004499419488073250102996e-01;
const ER6: f64 = -0.1225156446376204440720569753e+01;
const ER7: f64 = -0.4957589496572501915214079952e+00;
const ER8: f64 = 0.1664377182454986536961530415e+01;
const ER9: f64 = -0.3503288487499736816886487290e+00;
const ER10: f64 = 0.3341791187130174790297318841e+00;
const ER11: f64 = 0.8192320648511571246570742613e-01;
const ER12: f64 = -0.2235530786388629525884427845e-01;

const A21: f64 = 5.26001519587677318785587544488e-2;
const A31: f64 = 1.97250569845378994544595329183e-2;
const A32: f64 = 5.91751709536136983633785987549e-2;
const A41: f64 = 2.95875854768068491816892993775e-2;
const A43: f64 = 8.87627564304205475450678981324e-2;
const A51: f64 = 2.41365134159266685502369798665e-1;
const A53: f64 = -8.84549479328286085344864962717e-1;
const A54: f64 = 9.24834003261792003115737966543e-1;
const A61: f64 = 3.7037037037037037037037037037e-2;
const A64: f64 = 1.70828608729473871279604482173e-1;
const A65: f64 = 1.25467687566822425016691814123e-1;
const A71: f64 = 3.7109375e-2;
const A74: f64 = 1.70252211019544039314978060272e-1;
const A75: f64 = 6.02165389804559606850219397283e-2;
const A76: f64 = -1.7578125e-2;
const A81: f64 = 3.70920001185047927108779319836e-2;
const A84: f64 = 1.70383925712239993810214054705e-1;
const A85: f64 = 1.07262030446373284651809199168e-1;
const A86: f64 = -1.53194377486244017527936158236e-2;
const A87: f64 = 8.27378916381402288758473766002e-3;
const A91: f64 = 6.24110958716075717114429577812e-1;
const A94: f64 = -3.36089262944694129406857109825e0;
const A95: f64 = -8.68219346841726006818189891453e-1;
const A96: f64 = 2.75920996994467083049415600797e1;
const A97: f64 = 2.01540675504778934086186788979e1;
const A98: f64 = -4.34898841810699588477366255144e1;
const A101: f64 = 4.77662536438264365890433908527e-1;
const A104: f64 = -2.48811461997166764192642586468e0;
const A105: f64 = -5.90290826836842996371446475743e-1;
const A106: f64 = 2.12300514481811942347288949897e1;
const A107: f64 = 1.52792336328824235832596922938e1;
const A108: f64 = -3.32882109689848629194453265587e1;
const A109: f64 = -2.03312017085086261358222928593e-2;
const A111: f64 = -9.3714243008598732571704021658e-1;
const A114: f64 = 5.18637242884406370830023853209e0;
const A115: f64 = 1.09143734899672957818500254654e0;
const A116: f64 = -8.14978701074692612513997267357e0;
const A117: f64 = -1.85200656599969598641566180701e1;
const A118: f64 = 2.27394870993505042818970056734e1;
const A119: f64 = 2.49360555267965238987089396762e0;
const A1110: f64 = -3.0467644718982195003823669022e0;
const A121: f64 = 2.27331014751653820792359768449e0;
const A124: f64 = -1.05344954667372501984066689879e1;
const A125: f64 = -2.00087205822486249909675718444e0;
const A126: f64 = -1.79589318631187989172765950534e1;
const A127: f64 = 2.79488845294199600508499808837e1;
const A128: f64 = -2.85899827713502369474065508674e0;
const A129: f64 = -8.87285693353062954433549289258e0;
const A1210: f64 = 1.23605671757943030647266201528e1;
const A1211: f64 = 6.43392746015763530355970484046e-1;

const A141: f64 = 5.61675022830479523392909219681e-2;
const A147: f64 = 2.53500210216624811088794765333e-1;
const A148: f64 = -2.46239037470802489917441475441e-1;
const A149: f64 = -1.24191423263816360469010140626e-1;
const A1410: f64 = 1.5329179827876569731206322685e-1;
const A1411: f64 = 8.20105229563468988491666602057e-3;
const A1412: f64 = 7.56789766054569976138603589584e-3;
const A1413: f64 = -8.298e-3;
const A151: f64 = 3.18346481635021405060768473261e-2;
const A156: f64 = 2.83009096723667755288322961402e-2;
const A157: f64 = 5.35419883074385676223797384372e-2;
const A158: f64 = -5.49237485713909884646569340306e-2;
const A1511: f64 = -1.08347328697249322858509316994e-4;
const A1512: f64 = 3.82571090835658412954920192323e-4;
const A1513: f64 = -3.40465008687404560802977114492e-4;
const A1514: f64 = 1.41312443674632500278074618366e-1;
const A161: f64 = -4.28896301583791923408573538692e-1;
const A166: f64 = -4.69762141536116384314449447206e0;
const A167: f64 = 7.68342119606259904184240953878e0;
const A168: f64 = 4.06898981839711007970213554331e0;
const A169: f64 = 3.56727187455281109270669543021e-1;
const A1613: f64 = -1.39902416515901462129418009734e-3;
const A1614: f64 = 2.9475147891527723389556272149e0;
const A1615: f64 = -9.15095847217987001081870187138e0;

/// Dense-output weights `d_{r,j}`, rows r = 4..7 of `dop853.f`, columns j = 1, 6, 7, ..., 16.
const D: [[f64; 12]; 4] = [
    [
        -0.84289382761090128651353491142e+01,
        0.56671495351937776962531783590e+00,
        -0.30689499459498916912797304727e+01,
        0.23846676565120698287728149680e+01,
        0.21170345824450282767155149946e+01,
        -0.87139158377797299206789907490e+00,
        0.22404374302607882758541771650e+01,
        0.63157877876946881815570249290e+00,
        -0.88990336451333310820698117400e-01,
        0.18148505520854727256656404962e+02,
        -0.91946323924783554000451984436e+01,
        -0.44360363875948939664310572000e+01,
    ],
    [
        0.10427508642579134603413151009e+02,
        0.24228349177525818288430175319e+03,
        0.16520045171727028198505394887e+03,
        -0.37454675472269020279518312152e+03,
        -0.22113666853125306036270938578e+02,
        0.77334326684722638389603898808e+01,
        -0.30674084731089398182061213626e+02,
        -0.93321305264302278729567221706e+01,
        0.15697238121770843886131091075e+02,
        -0.31139403219565177677282850411e+02,
        -0.93529243588444783865713862664e+01,
        0.35816841486394083752465898540e+02,
    ],
    [
        0.19985053242002433820987653617e+02,
        -0.38703730874935176555105901742e+03,
        -0.18917813819516756882830838328e+03,
        0.52780815920542364900561016686e+03,
        -0.11573902539959630126141871134e+02,
        0.68812326946963000169666922661e+01,
        -0.10006050966910838403183860980e+01,
        0.77771377980534432092869265740e+00,
        -0.27782057523535084065932004339e+01,
        -0.60196695231264120758267380846e+02,
        0.84320405506677161018159903784e+02,
        0.11992291136182789328035130030e+02,
    ],
    [
        -0.25693933462703749003312586129e+02,
        -0.15418974869023643374053993627e+03,
        -0.23152937917604549567536039109e+03,
        0.35763911791061412378285349910e+03,
        0.93405324183624310003907691704e+02,
        -0.37458323136451633156875139351e+02,
        0.10409964950896230045147246184e+03,
        0.29840293426660503123344363579e+02,
        -0.43533456590011143754432175058e+02,
        0.96324553959188282948394950600e+02,
        -0.39177261675615439165231486172e+02,
        -0.14972683625798562581422125276e+03,
    ],
];

/// State of the continuous extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dense {
    /// No accepted step since the last reset / attempt.
    None,
    /// A step was accepted; the extra stages are not computed yet.
    Accepted,
    /// `rcont` holds the interpolation coefficients of the last accepted step.
    Ready,
}

/// DOP853 stepper (see the [module documentation](self) for the method). Holds 21 work vectors
/// of length `dim`, allocated once in [`Dop853::new`]; stepping never allocates.
///
/// Use through [`AdaptiveStepper`]: `reset`, then repeatedly `try_step` / `accept`, with
/// `prepare_dense` + `dense` for output inside the last accepted step.
#[derive(Clone, Debug)]
pub struct Dop853 {
    n: usize,
    rtol: f64,
    atol: f64,
    /// Stages k_1..k_12 of the current attempt (k\[0\] = f(t, x) at the step start).
    k: [Vec<f64>; 12],
    /// k_13 = f(t + h, y_new) of the last accepted step (becomes k_1 of the next step).
    fnew: Vec<f64>,
    k14: Vec<f64>,
    k15: Vec<f64>,
    k16: Vec<f64>,
    /// Stage argument.
    ys: Vec<f64>,
    /// Candidate of the last attempt.
    ynew: Vec<f64>,
    /// Start state of the last accepted step.
    yold: Vec<f64>,
    /// 8 blocks of `n` interpolation coefficients.
    rcont: Vec<f64>,
    t_try: f64,
    h_try: f64,
    t_old: f64,
    h_old: f64,
    fsal_pending: bool,
    dense: Dense,
    evals: u64,
}

impl Dop853 {
    /// A stepper for systems of dimension `dim` with the error tolerances `rtol` (relative) and
    /// `atol` (absolute, in state units; should be `> 0`).
    pub fn new(dim: usize, rtol: f64, atol: f64) -> Self {
        let z = || vec![0.0; dim];
        Dop853 {
            n: dim,
            rtol,
            atol,
            k: std::array::from_fn(|_| z()),
            fnew: z(),
            k14: z(),
            k15: z(),
            k16: z(),
            ys: z(),
            ynew: z(),
            yold: z(),
            rcont: vec![0.0; 8 * dim],
            t_try: 0.0,
            h_try: 0.0,
            t_old: 0.0,
            h_old: 0.0,
            fsal_pending: false,
            dense: Dense::None,
            evals: 0,
        }
    }

    /// Changes the tolerances (takes effect at the next attempted step).
    pub fn set_tolerances(&mut self, rtol: f64, atol: f64) {
        self.rtol = rtol;
        self.atol = atol;
    }

    /// The derivative `f(t, x)` at the current step start (valid after `reset` or `accept`).
    pub fn derivative(&self) -> &[f64] {
        if self.fsal_pending {
            &self.fnew
        } else {
            &self.k[0]
        }
    }

    /// The dense-output coefficients `r1..r8` of the last accepted step (8 blocks of `dim`
    /// values, block-major: `r_b` of component `i` at `(b-1) dim + i`; see the module
    /// documentation for the polynomial). Requires [`AdaptiveStepper::prepare_dense`] since the
    /// last [`AdaptiveStepper::accept`] (panics otherwise). Used by the DDE solver's history.
    pub fn dense_coefficients(&self) -> &[f64] {
        assert!(
            self.dense == Dense::Ready,
            "Dop853::dense_coefficients called without prepare_dense after an accepted step"
        );
        &self.rcont
    }
}

impl AdaptiveStepper for Dop853 {
    fn dim(&self) -> usize {
        self.n
    }

    fn control(&self) -> StepControl {
        StepControl {
            order: 8,
            expo1: 1.0 / 8.0,
            beta: 0.0,
            fac1: 0.333,
            fac2: 6.0,
            safe: 0.9,
        }
    }

    fn tolerances(&self) -> (f64, f64) {
        (self.rtol, self.atol)
    }

    fn rhs_evals(&self) -> u64 {
        self.evals
    }

    fn reset<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64]) {
        sys.rhs(t, x, &mut self.k[0]);
        self.evals += 1;
        self.fsal_pending = false;
        self.dense = Dense::None;
    }

    fn initial_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h_max: f64) -> f64 {
        if self.fsal_pending {
            std::mem::swap(&mut self.k[0], &mut self.fnew);
            self.fsal_pending = false;
            self.dense = Dense::None;
        }
        self.evals += 1;
        hinit(
            sys,
            t,
            x,
            &self.k[0],
            8,
            h_max,
            self.rtol,
            self.atol,
            &mut self.ys,
            &mut self.ynew,
        )
    }

    fn try_step<S: System + ?Sized>(&mut self, sys: &S, t: f64, x: &[f64], h: f64) -> f64 {
        let n = self.n;
        assert_eq!(
            x.len(),
            n,
            "Dop853::try_step: state length != stepper dimension"
        );
        if self.fsal_pending {
            std::mem::swap(&mut self.k[0], &mut self.fnew);
            self.fsal_pending = false;
        }
        self.dense = Dense::None;
        self.t_try = t;
        self.h_try = h;
        let (rtol, atol) = (self.rtol, self.atol);
        let [k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12] = &mut self.k;
        let (k1, k2, k3, k4) = (&mut k1[..n], &mut k2[..n], &mut k3[..n], &mut k4[..n]);
        let (k5, k6, k7, k8) = (&mut k5[..n], &mut k6[..n], &mut k7[..n], &mut k8[..n]);
        let (k9, k10, k11, k12) = (&mut k9[..n], &mut k10[..n], &mut k11[..n], &mut k12[..n]);
        let ys = &mut self.ys[..n];
        let ynew = &mut self.ynew[..n];

        for i in 0..n {
            ys[i] = x[i] + h * A21 * k1[i];
        }
        sys.rhs(t + C2 * h, ys, k2);
        for i in 0..n {
            ys[i] = x[i] + h * (A31 * k1[i] + A32 * k2[i]);
        }
        sys.rhs(t + C3 * h, ys, k3);
        for i in 0..n {
            ys[i] = x[i] + h * (A41 * k1[i] + A43 * k3[i]);
        }
        sys.rhs(t + C4 * h, ys, k4);
        for i in 0..n {
            ys[i] = x[i] + h * (A51 * k1[i] + A53 * k3[i] + A54 * k4[i]);
        }
        sys.rhs(t + C5 * h, ys, k5);
        for i in 0..n {
            ys[i] = x[i] + h * (A61 * k1[i] + A64 * k4[i] + A65 * k5[i]);
        }
        sys.rhs(t + C6 * h, ys, k6);
        for i in 0..n {
            ys[i] = x[i] + h * (A71 * k1[i] + A74 * k4[i] + A75 * k5[i] + A76 * k6[i]);
        }
        sys.rhs(t + C7 * h, ys, k7);
        for i in 0..n {
            ys[i] =
                x[i] + h * (A81 * k1[i] + A84 * k4[i] + A85 * k5[i] + A86 * k6[i] + A87 * k7[i]);
        }
        sys.rhs(t + C8 * h, ys, k8);
        for i in 0..n {
            ys[i] = x[i]
                + h * (A91 * k1[i]
                    + A94 * k4[i]
                    + A95 * k5[i]
                    + A96 * k6[i]
                    + A97 * k7[i]
                    + A98 * k8[i]);
        }
        sys.rhs(t + C9 * h, ys, k9);
        for i in 0..n {
            ys[i] = x[i]
                + h * (A101 * k1[i]
                    + A104 * k4[i]
                    + A105 * k5[i]
                    + A106 * k6[i]
                    + A107 * k7[i]
                    + A108 * k8[i]
                    + A109 * k9[i]);
        }
        sys.rhs(t + C10 * h, ys, k10);
        for i in 0..n {
            ys[i] = x[i]
                + h * (A111 * k1[i]
                    + A114 * k4[i]
                    + A115 * k5[i]
                    + A116 * k6[i]
                    + A117 * k7[i]
                    + A118 * k8[i]
                    + A119 * k9[i]
                    + A1110 * k10[i]);
        }
        sys.rhs(t + C11 * h, ys, k11);
        for i in 0..n {
            ys[i] = x[i]
                + h * (A121 * k1[i]
                    + A124 * k4[i]
                    + A125 * k5[i]
                    + A126 * k6[i]
                    + A127 * k7[i]
                    + A128 * k8[i]
                    + A129 * k9[i]
                    + A1210 * k10[i]
                    + A1211 * k11[i]);
        }
        sys.rhs(t + h, ys, k12);
        self.evals += 11;

        let mut err5 = 0.0;
        let mut err3 = 0.0;
        for i in 0..n {
            let bk = B1 * k1[i]
                + B6 * k6[i]
                + B7 * k7[i]
                + B8 * k8[i]
                + B9 * k9[i]
                + B10 * k10[i]
                + B11 * k11[i]
                + B12 * k12[i];
            let yn = x[i] + h * bk;
            ynew[i] = yn;
            let sk = atol + rtol * x[i].abs().max(yn.abs());
            let e3 = bk - BHH1 * k1[i] - BHH2 * k9[i] - BHH3 * k12[i];
            let e5 = ER1 * k1[i]
                + ER6 * k6[i]
                + ER7 * k7[i]
                + ER8 * k8[i]
                + ER9 * k9[i]
                + ER10 * k10[i]
                + ER11 * k11[i]
                + ER12 * k12[i];
            err3 += (e3 / sk) * (e3 / sk);
            err5 += (e5 / sk) * (e5 / sk);
        }
        let mut deno = err5 + 0.01 * err3;
        if deno <= 0.0 {
            deno = 1.0;
        }
        // err5 / √(n·deno), not err5·√(1/(n·deno)): with states near 1e-150 the sums are
        // subnormal and 1/deno overflows to +inf (a spurious rejection down to a too-small step)
        let err = h.abs() * err5 / (n as f64 * deno).sqrt();
        if err.is_nan() {
            f64::INFINITY
        } else {
            err
        }
    }

    fn candidate(&self) -> &[f64] {
        &self.ynew
    }

    fn accept<S: System + ?Sized>(&mut self, sys: &S, x: &mut [f64]) {
        self.yold.copy_from_slice(x);
        x.copy_from_slice(&self.ynew);
        sys.rhs(self.t_try + self.h_try, &self.ynew, &mut self.fnew);
        self.evals += 1;
        self.fsal_pending = true;
        self.t_old = self.t_try;
        self.h_old = self.h_try;
        self.dense = Dense::Accepted;
    }

    fn prepare_dense<S: System + ?Sized>(&mut self, sys: &S) {
        match self.dense {
            Dense::Ready => return,
            Dense::None => panic!("Dop853::prepare_dense: no accepted step to interpolate"),
            Dense::Accepted => {}
        }
        let n = self.n;
        let (t, h) = (self.t_old, self.h_old);
        let [k1, _, _, _, _, k6, k7, k8, k9, k10, k11, k12] = &self.k;
        let (k1, k6, k7, k8) = (&k1[..n], &k6[..n], &k7[..n], &k8[..n]);
        let (k9, k10, k11, k12) = (&k9[..n], &k10[..n], &k11[..n], &k12[..n]);
        let k13 = &self.fnew[..n];
        let y = &self.yold[..n];
        let ys = &mut self.ys[..n];
        let k14 = &mut self.k14[..n];
        let k15 = &mut self.k15[..n];
        let k16 = &mut self.k16[..n];

        for i in 0..n {
            ys[i] = y[i]
                + h * (A141 * k1[i]
                    + A147 * k7[i]
                    + A148 * k8[i]
                    + A149 * k9[i]
                    + A1410 * k10[i]
                    + A1411 * k11[i]
                    + A1412 * k12[i]
                    + A1413 * k13[i]);
        }
        sys.rhs(t + C14 * h, ys, k14);
        for i in 0..n {
            ys[i] = y[i]
                + h * (A151 * k1[i]
                    + A156 * k6[i]
                    + A157 * k7[i]
                    + A158 * k8[i]
                    + A1511 * k11[i]
                    + A1512 * k12[i]
                    + A1513 * k13[i]
                    + A1514 * k14[i]);
        }
        sys.rhs(t + C15 * h, ys, k15);
        for i in 0..n {
            ys[i] = y[i]
                + h * (A161 * k1[i]
                    + A166 * k6[i]
                    + A167 * k7[i]
                    + A168 * k8[i]
                    + A169 * k9[i]
                    + A1613 * k13[i]
                    + A1614 * k14[i]
                    + A1615 * k15[i]);
        }
        sys.rhs(t + C16 * h, ys, k16);
        self.evals += 3;

        let ynew = &self.ynew[..n];
        let (r, rest) = self.rcont.split_at_mut(4 * n);
        let (r0, r) = r.split_at_mut(n);
        let (r1, r) = r.split_at_mut(n);
        let (r2, r3) = r.split_at_mut(n);
        for i in 0..n {
            let ydiff = ynew[i] - y[i];
            let bspl = h * k1[i] - ydiff;
            r0[i] = y[i];
            r1[i] = ydiff;
            r2[i] = bspl;
            r3[i] = ydiff - h * k13[i] - bspl;
        }
        for (row, d) in rest.chunks_exact_mut(n).zip(D.iter()) {
            for i in 0..n {
                row[i] = h
                    * (d[0] * k1[i]
                        + d[1] * k6[i]
                        + d[2] * k7[i]
                        + d[3] * k8[i]
                        + d[4] * k9[i]
                        + d[5] * k10[i]
                        + d[6] * k11[i]
                        + d[7] * k12[i]
                        + d[8] * k13[i]
                        + d[9] * k14[i]
                        + d[10] * k15[i]
                        + d[11] * k16[i]);
            }
        }
        self.dense = Dense::Ready;
    }

    fn dense_interval(&self) -> (f64, f64) {
        (self.t_old, self.h_old)
    }

    fn dense(&self, t: f64, out: &mut [f64]) {
        assert!(
            self.dense == Dense::Ready,
            "Dop853::dense called without prepare_dense after an accepted step"
        );
        let n = self.n;
        let s = (t - self.t_old) / self.h_old;
        let s1 = 1.0 - s;
        let r = &self.rcont[..8 * n];
        let out = &mut out[..n];
        for i in 0..n {
            let conpar = r[4 * n + i] + s * (r[5 * n + i] + s1 * (r[6 * n + i] + s * r[7 * n + i]));
            out[i] = r[i] + s * (r[n + i] + s1 * (r[2 * n + i] + s * (r[3 * n + i] + s1 * conpar)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row sums of the tableau equal the nodes, weights sum to 1, error weights to 0.
    #[test]
    fn tableau_consistency() {
        let rows: [(f64, &[f64]); 14] = [
            (C2, &[A21]),
            (C3, &[A31, A32]),
            (C4, &[A41, A43]),
            (C5, &[A51, A53, A54]),
            (C6, &[A61, A64, A65]),
            (C7, &[A71, A74, A75, A76]),
            (C8, &[A81, A84, A85, A86, A87]),
            (C9, &[A91, A94, A95, A96, A97, A98]),
            (C10, &[A101, A104, A105, A106, A107, A108, A109]),
            (C11, &[A111, A114, A115, A116, A117, A118, A119, A1110]),
            (
                1.0,
                &[A121, A124, A125, A126, A127, A128, A129, A1210, A1211],
            ),
            (C14, &[A141, A147, A148, A149, A1410, A1411, A1412, A1413]),
            (C15, &[A151, A156, A157, A158, A1511, A1512, A1513, A1514]),
            (C16, &[A161, A166, A167, A168, A169, A1613, A1614, A1615]),
        ];
        for (c, a) in rows {
            let s: f64 = a.iter().sum();
            assert!((s - c).abs() < 1e-13, "row sum {s} != c {c}");
        }
        let b = [B1, B6, B7, B8, B9, B10, B11, B12];
        assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        assert!((BHH1 + BHH2 + BHH3 - 1.0).abs() < 1e-14);
        let er = [ER1, ER6, ER7, ER8, ER9, ER10, ER11, ER12];
        assert!(er.iter().sum::<f64>().abs() < 1e-14);
        // The dense polynomial's r5..r8 weights must sum to 0 (exact for constant f).
        for d in D {
            assert!(
                d.iter().sum::<f64>().abs() < 1e-10,
                "{}",
                d.iter().sum::<f64>()
            );
        }
    }
}
