//! The differentially private mechanisms, all floating-point safe: discrete Laplace
//! noise on integers (counts) and on integer-scaled values (sums and means), the
//! permute-and-flip mechanism on a fixed grid for quantiles, and the noisy patient
//! count that decides suppression.
//!
//! Every random choice is made by the exact integer samplers of [`crate::sampler`]
//! with rational parameters; floating point is used only to compute those parameters
//! from the query and the policy (never from the data) and to turn the integer outcome
//! into the released number (post-processing). So the set of possible outputs does
//! not depend on the true value beyond what the mechanism's distribution says, which
//! is what the textbook `f64` Laplace sampler fails (Mironov 2012).
//!
//! Parameters are rounded in the safe direction: noise scales up, ε down.

use crate::sampler::{self, Ratio};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

/// Grid steps per noise scale for sums and means: values are snapped to a grid at
/// most 1/4096 of the noise's scale, far below its resolution.
const STEPS_PER_SCALE: f64 = 4096.0;
/// The finest grid relative to the range's bound: values never exceed 2⁴⁰ steps.
const MAX_STEPS: f64 = (1u64 << 40) as f64;
/// The number of intervals of the quantile grid over the query's range.
pub const QUANTILE_GRID: usize = 1000;
/// Units per rank in the quantile scores: percentiles are read to 1/1000 of a
/// percent, so `q·n` is a whole number of units.
const RANK_UNIT: u128 = 100_000;

/// Why noise cannot be drawn.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum NoiseError {
    /// The noise's scale is not a finite number below 2⁵⁸ (ε too small for the range).
    #[error("the noise scale {0} cannot be sampled: ε is too small for this query's range")]
    Scale(f64),
}

/// Integer noise: `value + DLap(scale)` with `DLap(t)` the discrete Laplace
/// distribution, `P(x) ∝ exp(−|x|/t)`. A count of sensitivity `Δ` released with
/// `scale = Δ/ε` is ε-differentially private.
pub fn noisy_integer(
    value: i128,
    scale: f64,
    rng: &mut impl CryptoRng,
) -> Result<i128, NoiseError> {
    let t = Ratio::at_least(scale).ok_or(NoiseError::Scale(scale))?;
    Ok(value.saturating_add(sampler::discrete_laplace(t, rng)))
}

/// The grid for a real-valued sum whose continuous noise would have `scale`, for
/// values bounded by `bound` in absolute value: the power of two at most
/// `scale / 4096`, but no finer than `bound / 2⁴⁰` (so snapped values fit an `i64`).
/// It depends on the query and the policy only, never on the data.
pub fn grid(scale: f64, bound: f64) -> f64 {
    let fine = (scale / STEPS_PER_SCALE).log2().floor();
    let floor = (bound / MAX_STEPS).log2().ceil();
    let exponent = fine.max(floor);
    if exponent.is_finite() { exponent.clamp(-1000.0, 1000.0).exp2() } else { 1.0 }
}

/// `value` on the grid `step`: the nearest multiple, in steps.
pub fn snap(value: f64, step: f64) -> i128 {
    // A power-of-two step divides exactly; rounding is deterministic.
    (value / step).round() as i128
}

/// A real-valued sum released with discrete noise: each value is snapped to the grid
/// `step` ([`grid`]), and the sum in steps gets `DLap(m·⌈bound/step⌉ / ε)`, where one
/// patient moves at most `m` values each at most `bound` in absolute value. The
/// answer is the noisy number of steps times the step (exact for a power of two).
pub fn noisy_sum(
    values: impl IntoIterator<Item = f64>,
    bound: f64,
    per_patient: f64,
    epsilon: f64,
    rng: &mut impl CryptoRng,
) -> Result<f64, NoiseError> {
    let step = grid(per_patient * bound / epsilon, bound);
    let steps: i128 = values.into_iter().map(|v| snap(v, step)).sum();
    let scale = per_patient * (bound / step).ceil() / epsilon;
    Ok(noisy_integer(steps, scale, rng)? as f64 * step)
}

/// The point `j` of the quantile grid over `lo..=hi` (`QUANTILE_GRID` intervals).
pub fn grid_point(lo: f64, hi: f64, j: usize) -> f64 {
    if j >= QUANTILE_GRID { hi } else { lo + (hi - lo) * (j as f64 / QUANTILE_GRID as f64) }
}

/// The `percent`-th percentile (`0..=100`) of `sorted` (ascending, within
/// `lo..=hi`) by the permute-and-flip mechanism (McKenna and Sheldon 2020) on the
/// fixed grid of [`QUANTILE_GRID`] + 1 points over `lo..=hi`, with privacy `epsilon`
/// when one individual changes at most `per_patient` values.
///
/// A candidate `c` scores `u(c) = −|#{v < c} − q·n|` (`q = percent/100`, read to
/// 1/1000 of a percent), of sensitivity `per_patient`. The candidates are visited in
/// a uniformly random order and `c` is accepted with probability
/// `exp(ε·(u(c) − u*) / (2·per_patient))` (`u*` the best score), an exact
/// [`sampler::bernoulli_exp`] trial with a rational exponent; the first accepted is
/// the answer. This is ε-differentially private, like the exponential mechanism with
/// the same scores, and never less accurate (its expected error is at most the
/// exponential mechanism's).
pub fn quantile(
    sorted: &[f64],
    percent: f64,
    lo: f64,
    hi: f64,
    epsilon: f64,
    per_patient: usize,
    rng: &mut impl CryptoRng,
) -> f64 {
    let n = sorted.len() as u128;
    // Distances in units of 1/RANK_UNIT of a rank: |RANK_UNIT·#{v < c} − milli·n|,
    // with milli the percentile in thousandths of a percent (RANK_UNIT·q = milli).
    let milli = (percent.clamp(0.0, 100.0) * 1000.0).round() as u128;
    let distances: Vec<u128> = (0..=QUANTILE_GRID)
        .map(|j| {
            let c = grid_point(lo, hi, j);
            let below = sorted.partition_point(|v| *v < c) as u128;
            (below * RANK_UNIT).abs_diff(milli * n)
        })
        .collect();
    let best = distances.iter().copied().min().unwrap_or(0);
    // γ(c) = ε·(d(c) − d*) / (2·m·RANK_UNIT), with ε rounded down.
    let eps = safe_epsilon(epsilon);
    let den = eps.den().saturating_mul(2 * per_patient.max(1) as u128 * RANK_UNIT);
    let order = sampler::permutation(QUANTILE_GRID + 1, rng);
    loop {
        for &j in &order {
            let accepted = match Ratio::new(eps.num().saturating_mul(distances[j] - best), den) {
                Some(gamma) => sampler::bernoulli_exp(gamma, rng),
                None => true,
            };
            if accepted {
                return grid_point(lo, hi, j);
            }
        }
        // Not reached: a best candidate (γ = 0) is always accepted.
    }
}

/// ε as a ratio, rounded down; capped at 2⁵⁰ (less ε is always safe) and 0 when it is
/// not a number.
fn safe_epsilon(epsilon: f64) -> Ratio {
    Ratio::at_most(epsilon.min(2f64.powi(50))).unwrap_or(ZERO)
}

const ZERO: Ratio = match Ratio::new(0, 1) {
    Some(r) => r,
    None => unreachable!(),
};

/// The rule that decides whether a cell is released: a noisy count of its patients.
///
/// With `n` distinct contributing patients, `k` the policy's k, `L = ⌊(k − 1)/2⌋` the
/// spread and `Z` drawn from the discrete Laplace distribution with parameter
/// `exp(−ε_s)` truncated to `−L..=L` (`P(Z = z) ∝ exp(−ε_s·|z|)`), the cell is released
/// when `n + Z ≥ k`. So a cell with fewer than `k − L` patients is never released,
/// one with at least `k + L` always is, and in between one patient more or fewer
/// changes the probability of release by at most a factor `exp(ε_s)` plus `δ`: the
/// decision is `(ε_s, δ)`-differentially private with
/// `δ = exp(−ε_s·L) / Σ_{|z|≤L} exp(−ε_s·|z|)`, the mass of one end of the truncated
/// noise (δ = 1, an exact threshold, when `L = 0`, i.e. `k ≤ 2`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Suppression {
    /// `ε_s`, the ε spent on the decision (part of the bounty's ε).
    pub epsilon: f64,
    /// `L`: the noise lies in `−L..=L`.
    pub spread: u32,
    /// `δ` of the decision.
    pub delta: f64,
}

impl Suppression {
    /// The rule for `k` with `epsilon` spent on it.
    pub fn new(k: usize, epsilon: f64) -> Self {
        let spread = u32::try_from(k.saturating_sub(1) / 2).unwrap_or(u32::MAX);
        Self { epsilon, spread, delta: delta(epsilon, spread) }
    }

    /// Whether a cell of `patients` distinct patients is released under `k`.
    pub fn released(&self, patients: usize, k: usize, rng: &mut impl CryptoRng) -> bool {
        let eps = safe_epsilon(self.epsilon);
        let z = sampler::truncated_discrete_laplace(eps, self.spread, rng);
        let noisy = i128::try_from(patients).unwrap_or(i128::MAX) + i128::from(z);
        noisy >= i128::try_from(k).unwrap_or(i128::MAX)
    }

    /// The exact probability that a cell of `patients` is released under `k`.
    pub fn release_probability(&self, patients: usize, k: usize) -> f64 {
        let l = i64::from(self.spread);
        let weight = |z: i64| (-self.epsilon * z.unsigned_abs() as f64).exp();
        let total: f64 = (-l..=l).map(weight).sum();
        let need = i64::try_from(k).unwrap_or(i64::MAX) - i64::try_from(patients).unwrap_or(0);
        (need.max(-l)..=l).map(weight).sum::<f64>() / total
    }
}

/// δ of the truncated decision: the probability of one end of the noise.
fn delta(epsilon: f64, spread: u32) -> f64 {
    let p = (-epsilon).exp();
    let total: f64 = 1.0 + 2.0 * (1..=spread).map(|z| p.powi(z as i32)).sum::<f64>();
    p.powi(spread as i32) / total
}

/// The CDF of the discrete Laplace distribution of scale `t` at the integer `x`:
/// `P(X ≤ x)`, with `p = exp(−1/t)`.
pub fn discrete_laplace_cdf(x: i64, t: f64) -> f64 {
    let p = (-1.0 / t).exp();
    let tail = |k: i64| p.powi(i32::try_from(k).unwrap_or(i32::MAX)) / (1.0 + p);
    if x < 0 { tail(-x) } else { 1.0 - tail(x + 1) }
}

/// The variance of the discrete Laplace distribution of scale `t`: `2p / (1 − p)²`.
pub fn discrete_laplace_variance(t: f64) -> f64 {
    let p = (-1.0 / t).exp();
    2.0 * p / ((1.0 - p) * (1.0 - p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    #[test]
    fn quantile_concentrates_near_the_median() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sorted: Vec<f64> = (0..1001).map(f64::from).collect();
        let mut hits = 0;
        for _ in 0..200 {
            let m = quantile(&sorted, 50.0, 0.0, 1000.0, 1.0, 1, &mut rng);
            assert!((0.0..=1000.0).contains(&m));
            assert_eq!(m, m.round(), "a grid point (step 1): {m}");
            if (450.0..=550.0).contains(&m) {
                hits += 1;
            }
        }
        assert!(hits > 190, "{hits}");
    }

    #[test]
    fn quantile_outputs_only_grid_points() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let sorted = [1.234_567, 2.5, 3.25];
        for _ in 0..50 {
            let v = quantile(&sorted, 50.0, 0.0, 10.0, 0.5, 1, &mut rng);
            let j = (v / 10.0 * QUANTILE_GRID as f64).round() as usize;
            assert_eq!(v, grid_point(0.0, 10.0, j), "{v} is not a grid point");
        }
    }

    #[test]
    fn grids_are_powers_of_two_fine_enough() {
        let g = grid(800.0, 200.0);
        assert_eq!(g, 0.125, "the largest power of two at most 800/4096");
        assert_eq!(grid(1e-9, 100.0).log2(), (100.0f64 / MAX_STEPS).log2().ceil());
        assert_eq!(snap(100.0, g), 800);
        assert_eq!(snap(-0.0625, 0.125), -1, "half away from zero");
    }

    #[test]
    fn sums_on_the_grid_are_exact_multiples_of_the_step() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let step = grid(2.0 * 200.0 / 0.5, 200.0);
        for _ in 0..100 {
            let s = noisy_sum([100.0, 50.5], 200.0, 2.0, 0.5, &mut rng).expect("sum");
            assert_eq!((s / step).fract(), 0.0, "{s}");
        }
        assert!(matches!(noisy_sum([1.0], 1.0, 1.0, 1e-30, &mut rng), Err(NoiseError::Scale(_))));
    }

    #[test]
    fn suppression_delta_and_probabilities() {
        let rule = Suppression::new(10, 0.25);
        assert_eq!(rule.spread, 4);
        // δ = p⁴ / (1 + 2(p + p² + p³ + p⁴)), p = exp(−0.25).
        assert!((rule.delta - 0.0675).abs() < 5e-4, "{}", rule.delta);
        assert_eq!(rule.release_probability(5, 10), 0.0);
        assert_eq!(rule.release_probability(14, 10), 1.0);
        // Symmetric noise: P(Z ≥ 0) + P(Z ≥ 1) = 1.
        let (at, below) = (rule.release_probability(10, 10), rule.release_probability(9, 10));
        assert!((at + below - 1.0).abs() < 1e-12, "{at} {below}");
        assert!(below > 0.3 && at < 0.7, "no exact threshold: {below} {at}");
        assert_eq!(Suppression::new(2, 0.25).delta, 1.0, "no spread: an exact threshold");
    }
}
