//! Exact samplers in integer arithmetic: uniform integers, Bernoulli trials with a
//! rational probability or a probability `exp(−γ)` for a rational `γ`, and the
//! discrete Laplace distribution with a rational scale.
//!
//! Nothing here touches floating point, so no output carries the low-bit structure
//! that Mironov (2012) exploited in floating-point Laplace samplers. The algorithms
//! are those of Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential
//! Privacy" (NeurIPS 2020): Algorithm 1 for `Bernoulli(exp(−γ))` and Algorithm 2 for
//! the discrete Laplace distribution. Every random bit comes from the caller's
//! cryptographic generator.
//!
//! (OpenDP's Rust library has the same samplers, but it is a heavy dependency with an
//! arbitrary-precision backend, and is not among the workspace's crates: the few lines
//! below are written from the paper instead.)

use rand_core::CryptoRng;

/// A non-negative rational number `num / den` (`den ≥ 1`), the parameters the exact
/// samplers take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: u128,
    den: u128,
}

/// The denominator used when a floating-point number is turned into a [`Ratio`].
const DEN_BITS: u32 = 32;
/// The largest numerator [`Ratio::at_least`] and [`Ratio::at_most`] produce (2⁹⁰),
/// which keeps every product in the samplers within `u128`.
const MAX_NUM: u128 = 1 << 90;

impl Ratio {
    /// `num / den`; `None` when `den` is 0.
    pub const fn new(num: u128, den: u128) -> Option<Self> {
        if den == 0 { None } else { Some(Self { num, den }) }
    }

    /// The numerator.
    pub const fn num(self) -> u128 {
        self.num
    }

    /// The denominator.
    pub const fn den(self) -> u128 {
        self.den
    }

    /// The smallest multiple of 2⁻³² that is at least `x` (`x` finite, ≥ 0, below
    /// 2⁵⁸): used for noise scales, which may only grow when rounded.
    pub fn at_least(x: f64) -> Option<Self> {
        Self::from_f64(x, f64::ceil)
    }

    /// The largest multiple of 2⁻³² that is at most `x` (`x` finite, ≥ 0, below
    /// 2⁵⁸): used for ε, which may only shrink when rounded.
    pub fn at_most(x: f64) -> Option<Self> {
        Self::from_f64(x, f64::floor)
    }

    fn from_f64(x: f64, round: fn(f64) -> f64) -> Option<Self> {
        if !(x.is_finite() && x >= 0.0) {
            return None;
        }
        // Exact: multiplying by a power of two only shifts the exponent.
        let scaled = round(x * f64::from(1u32 << 16) * f64::from(1u32 << 16));
        if scaled >= MAX_NUM as f64 {
            return None;
        }
        Some(Self { num: scaled as u128, den: 1 << DEN_BITS })
    }

    /// This ratio times a whole number (saturating).
    pub const fn times(self, k: u128) -> Self {
        Self { num: self.num.saturating_mul(k), den: self.den }
    }

    /// This ratio divided by a whole number ≥ 1 (saturating).
    pub const fn divided_by(self, k: u128) -> Self {
        Self { num: self.num, den: self.den.saturating_mul(k) }
    }

    /// Its value, approximately (for display and accounting only).
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

/// A uniform integer in `0..n` (`n ≥ 1`), by rejection: exact.
pub fn uniform_below(n: u128, rng: &mut impl CryptoRng) -> u128 {
    if n <= 1 {
        return 0;
    }
    let bits = 128 - (n - 1).leading_zeros();
    let mask = if bits == 128 { u128::MAX } else { (1u128 << bits) - 1 };
    loop {
        let draw = ((u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())) & mask;
        if draw < n {
            return draw;
        }
    }
}

/// `true` with probability `p` (clamped to 1 when `p > 1`).
pub fn bernoulli(p: Ratio, rng: &mut impl CryptoRng) -> bool {
    uniform_below(p.den, rng) < p.num
}

/// `true` with probability `exp(−γ)`: CKS20 Algorithm 1.
pub fn bernoulli_exp(gamma: Ratio, rng: &mut impl CryptoRng) -> bool {
    if gamma.num <= gamma.den {
        // γ ≤ 1: the number of successes K in a row of Bernoulli(γ/k) for k = 1, 2, …
        // is odd with probability exp(−γ).
        let mut k: u128 = 1;
        while bernoulli(gamma.divided_by(k), rng) {
            k += 1;
        }
        k % 2 == 1
    } else {
        // γ > 1: exp(−γ) = exp(−1)^⌊γ⌋ · exp(−(γ − ⌊γ⌋)); stop at the first failure.
        let whole = gamma.num / gamma.den;
        let one = Ratio { num: 1, den: 1 };
        let mut i = 0;
        while i < whole {
            if !bernoulli_exp(one, rng) {
                return false;
            }
            i += 1;
        }
        bernoulli_exp(Ratio { num: gamma.num % gamma.den, den: gamma.den }, rng)
    }
}

/// A draw from the discrete Laplace distribution of scale `t` > 0 on the integers,
/// `P(x) ∝ exp(−|x| / t)`: CKS20 Algorithm 2. A scale of 0 gives 0.
pub fn discrete_laplace(scale: Ratio, rng: &mut impl CryptoRng) -> i128 {
    // Scale t = num/den; the paper's (s, t) are (den, num).
    let (s, t) = (scale.den, scale.num);
    if t == 0 {
        return 0;
    }
    loop {
        let u = uniform_below(t, rng);
        if !bernoulli_exp(Ratio { num: u, den: t }, rng) {
            continue;
        }
        let mut v: u128 = 0;
        while bernoulli_exp(Ratio { num: 1, den: 1 }, rng) {
            v += 1;
        }
        let Some(x) = t.checked_mul(v).and_then(|tv| tv.checked_add(u)) else {
            // Unreachable in practice (v ≥ 2³⁸ has probability exp(−2³⁸)).
            continue;
        };
        let y = x / s;
        let negative = bernoulli(Ratio { num: 1, den: 2 }, rng);
        if negative && y == 0 {
            continue;
        }
        let y = i128::try_from(y).unwrap_or(i128::MAX);
        return if negative { -y } else { y };
    }
}

/// A draw from the discrete Laplace distribution with parameter `exp(−ε)` truncated
/// to `−spread..=spread`: `P(z) ∝ exp(−ε·|z|)` for `|z| ≤ spread`. Sampled by
/// rejection from the uniform distribution on that range: a proposal `z` is accepted
/// with probability `exp(−ε·|z|)`, so `z = 0` always is and a draw takes at most
/// `2·spread + 1` proposals on average.
pub fn truncated_discrete_laplace(epsilon: Ratio, spread: u32, rng: &mut impl CryptoRng) -> i64 {
    let width = 2 * u128::from(spread) + 1;
    loop {
        let z = i64::try_from(uniform_below(width, rng)).unwrap_or(0) - i64::from(spread);
        if bernoulli_exp(epsilon.times(u128::from(z.unsigned_abs())), rng) {
            return z;
        }
    }
}

/// A uniformly random permutation of `0..n` (Fisher–Yates with exact uniform draws).
pub fn permutation(n: usize, rng: &mut impl CryptoRng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = usize::try_from(uniform_below(i as u128 + 1, rng)).unwrap_or(i);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    fn ratio(num: u128, den: u128) -> Ratio {
        Ratio::new(num, den).expect("a ratio")
    }

    /// `hits` of `n` trials are within 5 standard deviations of `n·p`.
    fn near(hits: usize, n: usize, p: f64) -> bool {
        let sd = (n as f64 * p * (1.0 - p)).sqrt();
        (hits as f64 - n as f64 * p).abs() < 5.0 * sd.max(1.0)
    }

    #[test]
    fn ratios_round_in_the_safe_direction() {
        let up = Ratio::at_least(0.1).expect("ratio");
        let down = Ratio::at_most(0.1).expect("ratio");
        assert!(up.to_f64() >= 0.1 && down.to_f64() <= 0.1);
        assert_eq!(up.num() - down.num(), 1);
        assert_eq!(Ratio::at_least(2.5), Ratio::new(5 << 31, 1 << 32));
        assert_eq!(Ratio::at_least(1e-15).map(Ratio::num), Some(1), "tiny scales round up");
        assert_eq!(Ratio::at_most(1e-15).map(Ratio::num), Some(0), "tiny ε rounds down");
        assert_eq!(Ratio::at_least(f64::NAN), None);
        assert_eq!(Ratio::at_least(-1.0), None);
        assert_eq!(Ratio::at_least(1e30), None);
    }

    #[test]
    fn uniform_draws_cover_the_range_evenly() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[usize::try_from(uniform_below(7, &mut rng)).expect("small")] += 1;
        }
        assert!(counts.iter().all(|c| near(*c, 70_000, 1.0 / 7.0)), "{counts:?}");
        assert_eq!(uniform_below(1, &mut rng), 0);
        let mut seen = permutation(10, &mut rng);
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn bernoulli_exp_has_probability_exp_minus_gamma() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        const N: usize = 40_000;
        for (num, den) in [(0, 1), (1, 4), (1, 1), (5, 2), (7, 1)] {
            let p = (-(num as f64) / den as f64).exp();
            let hits = (0..N).filter(|_| bernoulli_exp(ratio(num, den), &mut rng)).count();
            assert!(near(hits, N, p), "γ {num}/{den}: {hits} of {N}, expected {}", p * N as f64);
        }
        // A sampler returning exp(−γ/2) would fail the same check.
        let hits = (0..N).filter(|_| bernoulli_exp(ratio(1, 2), &mut rng)).count();
        assert!(!near(hits, N, (-1.0f64).exp()), "{hits}");
    }

    #[test]
    fn discrete_laplace_passes_a_chi_square_test_and_a_wrong_scale_does_not() {
        // P(x) = (1 − p)/(1 + p) · p^|x| with p = exp(−1/t); bins −8..=8 and the two
        // tails; 18 degrees of freedom, whose 0.1% critical value is 42.3.
        let chi_square = |draws: &[i128], t: f64| -> f64 {
            let p = (-1.0 / t).exp();
            let pmf = |x: i128| {
                (1.0 - p) / (1.0 + p) * p.powi(i32::try_from(x.abs()).unwrap_or(i32::MAX))
            };
            let tail: f64 = p.powi(9) / (1.0 + p);
            let n = draws.len() as f64;
            let mut stat = 0.0;
            for x in -8..=8 {
                let seen = draws.iter().filter(|d| **d == x).count() as f64;
                stat += (seen - n * pmf(x)).powi(2) / (n * pmf(x));
            }
            for side in [-1, 1] {
                let seen = draws.iter().filter(|d| **d * side > 8).count() as f64;
                stat += (seen - n * tail).powi(2) / (n * tail);
            }
            stat
        };
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for (num, den) in [(3u128, 1u128), (5, 2), (9, 4)] {
            let t = num as f64 / den as f64;
            let draws: Vec<i128> =
                (0..50_000).map(|_| discrete_laplace(ratio(num, den), &mut rng)).collect();
            let stat = chi_square(&draws, t);
            assert!(stat < 42.3, "scale {t}: χ² {stat}");
            let mean = draws.iter().sum::<i128>() as f64 / draws.len() as f64;
            assert!(mean.abs() < 0.1, "scale {t}: mean {mean}");
            // The same draws against a 10% larger scale are rejected.
            let wrong = chi_square(&draws, 1.1 * t);
            assert!(wrong > 42.3, "scale {t}: χ² {wrong} against a wrong scale");
        }
        assert_eq!(discrete_laplace(ratio(0, 1), &mut rng), 0);
    }

    #[test]
    fn truncated_draws_stay_in_range_with_the_right_weights() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        const N: usize = 60_000;
        let eps = ratio(1, 2);
        let mut counts = [0usize; 7];
        for _ in 0..N {
            let z = truncated_discrete_laplace(eps, 3, &mut rng);
            assert!((-3..=3).contains(&z), "{z}");
            counts[usize::try_from(z + 3).expect("in range")] += 1;
        }
        let weights: Vec<f64> = (-3i32..=3).map(|z| (-0.5 * f64::from(z.abs())).exp()).collect();
        let total: f64 = weights.iter().sum();
        for (c, w) in counts.iter().zip(&weights) {
            assert!(near(*c, N, w / total), "{counts:?}");
        }
        // Spread 0 is no noise at all.
        assert!((0..100).all(|_| truncated_discrete_laplace(eps, 0, &mut rng) == 0));
    }
}
