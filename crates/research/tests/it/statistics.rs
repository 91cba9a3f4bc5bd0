//! The noise has its calibrated distribution: Kolmogorov–Smirnov tests with a fixed
//! seed against Laplace(b = sensitivity / ε).

use crate::{day, iron_cohort};
use medrec_research::{
    aggregate::{Answer, release},
    noise::{laplace, laplace_cdf},
    policy::Policy,
    query::BountyQuery,
};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

const DRAWS: usize = 20_000;

/// The 1% critical value of the one-sample KS statistic for `n` draws.
fn critical(n: usize) -> f64 {
    1.63 / (n as f64).sqrt()
}

/// The KS statistic of `draws` against a continuous CDF.
fn ks_continuous(mut draws: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
    draws.sort_by(f64::total_cmp);
    let n = draws.len() as f64;
    draws
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let f = cdf(*x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

fn mean_and_variance(draws: &[f64]) -> (f64, f64) {
    let n = draws.len() as f64;
    let mean = draws.iter().sum::<f64>() / n;
    let var = draws.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

#[test]
fn the_laplace_sampler_has_the_laplace_distribution() {
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    for b in [0.5, 2.0, 40.0] {
        let draws: Vec<f64> = (0..DRAWS).map(|_| laplace(b, &mut rng)).collect();
        let (mean, var) = mean_and_variance(&draws);
        assert!(mean.abs() < 0.05 * b, "b {b}: mean {mean}");
        assert!((var / (2.0 * b * b) - 1.0).abs() < 0.08, "b {b}: variance {var}");
        let d = ks_continuous(draws, |x| laplace_cdf(x, b));
        assert!(d < critical(DRAWS), "b {b}: KS {d}");
    }
    // And the test can fail: the same draws against the wrong scale are rejected.
    let draws: Vec<f64> = (0..DRAWS).map(|_| laplace(2.0, &mut rng)).collect();
    let d = ks_continuous(draws, |x| laplace_cdf(x, 2.4));
    assert!(d > critical(DRAWS), "KS {d} against a wrong scale");
}

#[test]
fn noisy_counts_are_rounded_laplace_around_the_true_count() {
    // 50 patients, each contributing one value: the true count is 50; sensitivity 1,
    // ε 0.5, so b = 2 (far enough from 0 that the floor at 0 never acts).
    let cohort = iron_cohort(50);
    let policy = Policy::default();
    let b = policy.max_values_per_patient as f64 / policy.epsilon_per_bounty;
    let query: BountyQuery = "count(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500"
        .parse()
        .expect("parses");
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let draws: Vec<i64> = (0..DRAWS)
        .map(|_| {
            let r =
                release(&query, &policy, &cohort, day(2026, 1, 15), &mut rng).expect("released");
            match r.cells[0].value {
                Some(Answer::Count(c)) => i64::try_from(c).expect("small"),
                ref other => panic!("{other:?}"),
            }
        })
        .collect();
    let as_f64: Vec<f64> = draws.iter().map(|d| *d as f64).collect();
    let (mean, var) = mean_and_variance(&as_f64);
    assert!((mean - 50.0).abs() < 0.1, "mean {mean}");
    // Var(Laplace) = 2b²; rounding to integers adds 1/12 (Sheppard).
    let expected = 2.0 * b * b + 1.0 / 12.0;
    assert!((var - expected).abs() < 0.08 * expected, "variance {var}, expected {expected}");
    // KS against the distribution of round(50 + Lap(b)): P(X <= x) = F(x + ½ − 50).
    // Both CDFs are steps at the integers, so the supremum is at an integer.
    let (lo, hi) =
        (draws.iter().min().copied().unwrap_or(0), draws.iter().max().copied().unwrap_or(0));
    let mut sorted = draws;
    sorted.sort_unstable();
    let d = (lo - 1..=hi)
        .map(|x| {
            let empirical = sorted.partition_point(|d| *d <= x) as f64 / DRAWS as f64;
            (empirical - laplace_cdf(x as f64 + 0.5 - 50.0, b)).abs()
        })
        .fold(0.0, f64::max);
    assert!(d < critical(DRAWS), "KS {d}");
    // Sanity: a mis-scaled noise would be caught by the same statistic.
    let wrong = (lo - 1..=hi)
        .map(|x| {
            let empirical = sorted.partition_point(|d| *d <= x) as f64 / DRAWS as f64;
            (empirical - laplace_cdf(x as f64 + 0.5 - 50.0, 1.5 * b)).abs()
        })
        .fold(0.0, f64::max);
    assert!(wrong > critical(DRAWS), "KS {wrong} against a wrong scale");
}

#[test]
fn noisy_sums_are_laplace_with_the_clamped_sensitivity() {
    // 12 patients at 100, range 0..200, two values allowed: sensitivity 2 · 200, ε 0.5.
    let cohort = iron_cohort(12);
    let policy = Policy { max_values_per_patient: 2, ..Policy::default() };
    let b = 2.0 * 200.0 / policy.epsilon_per_bounty;
    let query: BountyQuery = "sum(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..200"
        .parse()
        .expect("parses");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let noise: Vec<f64> = (0..DRAWS)
        .map(|_| {
            let r =
                release(&query, &policy, &cohort, day(2026, 1, 15), &mut rng).expect("released");
            match r.cells[0].value {
                Some(Answer::Sum(s)) => s - 1200.0,
                ref other => panic!("{other:?}"),
            }
        })
        .collect();
    let (mean, var) = mean_and_variance(&noise);
    assert!(mean.abs() < 0.05 * b, "mean {mean}");
    assert!((var / (2.0 * b * b) - 1.0).abs() < 0.08, "variance {var}");
    let d = ks_continuous(noise, |x| laplace_cdf(x, b));
    assert!(d < critical(DRAWS), "KS {d}");
}
