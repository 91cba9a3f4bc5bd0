//! The noise has its calibrated distribution: Kolmogorov–Smirnov tests with a fixed
//! seed against the discrete Laplace distribution of scale sensitivity / ε (and, for
//! sums on a fine grid, against the continuous Laplace distribution it approximates),
//! and the suppression decision's probabilities.

use crate::{day, iron_cohort};
use medrec_research::{
    aggregate::{Answer, release},
    noise::{Suppression, discrete_laplace_cdf, discrete_laplace_variance, noisy_integer},
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

/// The continuous Laplace CDF of scale `b` at `x`.
fn laplace_cdf(x: f64, b: f64) -> f64 {
    if x < 0.0 { 0.5 * (x / b).exp() } else { 1.0 - 0.5 * (-x / b).exp() }
}

/// The KS statistic of integer `draws` against the CDF of `centre + DLap(t)`: both are
/// steps at the integers, so the supremum is at an integer.
fn ks_discrete(draws: &[i64], centre: i64, t: f64) -> f64 {
    let (lo, hi) =
        (draws.iter().min().copied().unwrap_or(0), draws.iter().max().copied().unwrap_or(0));
    let mut sorted = draws.to_vec();
    sorted.sort_unstable();
    (lo - 1..=hi)
        .map(|x| {
            let empirical = sorted.partition_point(|d| *d <= x) as f64 / sorted.len() as f64;
            (empirical - discrete_laplace_cdf(x - centre, t)).abs()
        })
        .fold(0.0, f64::max)
}

#[test]
fn the_discrete_laplace_sampler_has_the_discrete_laplace_distribution() {
    let mut rng = ChaCha20Rng::seed_from_u64(2026);
    for t in [0.5, 2.0, 40.0] {
        let draws: Vec<i64> = (0..DRAWS)
            .map(|_| i64::try_from(noisy_integer(0, t, &mut rng).expect("drawn")).expect("small"))
            .collect();
        let as_f64: Vec<f64> = draws.iter().map(|d| *d as f64).collect();
        let (mean, var) = mean_and_variance(&as_f64);
        assert!(mean.abs() < 0.05 * t, "t {t}: mean {mean}");
        let expected = discrete_laplace_variance(t);
        assert!((var / expected - 1.0).abs() < 0.08, "t {t}: variance {var}, expected {expected}");
        let d = ks_discrete(&draws, 0, t);
        assert!(d < critical(DRAWS), "t {t}: KS {d}");
    }
    // And the test can fail: the same draws against the wrong scale are rejected.
    let draws: Vec<i64> = (0..DRAWS)
        .map(|_| i64::try_from(noisy_integer(0, 2.0, &mut rng).expect("drawn")).expect("small"))
        .collect();
    let d = ks_discrete(&draws, 0, 2.4);
    assert!(d > critical(DRAWS), "KS {d} against a wrong scale");
}

#[test]
fn noisy_counts_are_discrete_laplace_around_the_true_count() {
    // 50 patients, each contributing one value: the true count is 50; sensitivity 1,
    // and the values get ε·(1 − share) = 0.375, so t = 1/0.375 (far enough from 0 that
    // the floor at 0 never acts; 50 patients are always past the suppression rule).
    let cohort = iron_cohort(50);
    let policy = Policy::default();
    let values_epsilon = policy.epsilon_per_bounty * (1.0 - policy.suppression_share);
    let t = policy.max_values_per_patient as f64 / values_epsilon;
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
    let expected = discrete_laplace_variance(t);
    assert!((var - expected).abs() < 0.08 * expected, "variance {var}, expected {expected}");
    let d = ks_discrete(&draws, 50, t);
    assert!(d < critical(DRAWS), "KS {d}");
    // Sanity: a mis-scaled noise would be caught by the same statistic.
    let wrong = ks_discrete(&draws, 50, 1.5 * t);
    assert!(wrong > critical(DRAWS), "KS {wrong} against a wrong scale");
}

#[test]
fn noisy_sums_are_laplace_with_the_clamped_sensitivity() {
    // 14 patients at 100 (k + spread: always released), range 0..200, two values
    // allowed: sensitivity 2 · 200, and the values get ε·(1 − share). The grid is
    // 1/4096 of the scale or finer, so the discrete noise is Laplace to well within
    // the KS bound.
    let cohort = iron_cohort(14);
    let policy = Policy { max_values_per_patient: 2, ..Policy::default() };
    let b = 2.0 * 200.0 / (policy.epsilon_per_bounty * (1.0 - policy.suppression_share));
    let query: BountyQuery = "sum(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..200"
        .parse()
        .expect("parses");
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let noise: Vec<f64> = (0..DRAWS)
        .map(|_| {
            let r =
                release(&query, &policy, &cohort, day(2026, 1, 15), &mut rng).expect("released");
            match r.cells[0].value {
                Some(Answer::Sum(s)) => s - 1400.0,
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

/// One patient more or fewer changes the probability that a cell is released by at
/// most a factor exp(ε_s) (plus δ at the ends of the truncated noise); no patient count
/// flips it for sure between k − L and k + L; measured over seeded trials and compared
/// with the exact probabilities.
#[test]
fn one_patient_flips_suppression_only_with_bounded_probability() {
    const TRIALS: usize = 20_000;
    let policy = Policy::default();
    let rule = Suppression::new(policy.k, policy.epsilon_per_bounty * policy.suppression_share);
    let (k, l) = (policy.k, rule.spread as usize);
    assert_eq!((rule.epsilon, l), (0.125, 4));
    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let mut freq = Vec::new();
    for n in 0..=k + l + 1 {
        let hits = (0..TRIALS).filter(|_| rule.released(n, k, &mut rng)).count();
        let p = hits as f64 / TRIALS as f64;
        let exact = rule.release_probability(n, k);
        let sd = (exact * (1.0 - exact) / TRIALS as f64).sqrt();
        assert!((p - exact).abs() <= 5.0 * sd + 1e-9, "n {n}: {p} vs exact {exact}");
        freq.push(p);
    }
    for (n, p) in freq.iter().enumerate().take(k - l) {
        assert_eq!(*p, 0.0, "{n} < k − L patients are never released");
    }
    for (n, p) in freq.iter().enumerate().skip(k + l) {
        assert_eq!(*p, 1.0, "{n} ≥ k + L patients are always released");
    }
    // An exact threshold would give 0 at k − 1 and 1 at k.
    assert!(freq[k - 1] > 0.3 && freq[k] < 0.7, "{} {}", freq[k - 1], freq[k]);
    let bound = rule.epsilon.exp();
    let slack = 0.02;
    for n in 0..k + l + 1 {
        let (a, b) = (freq[n], freq[n + 1]);
        // Releases and suppressions, both directions.
        assert!(b <= bound * a + rule.delta + slack, "n {n}: {a} → {b}");
        assert!((1.0 - a) <= bound * (1.0 - b) + rule.delta + slack, "n {n}: {a} → {b}");
        assert!(a <= bound * b + slack && (1.0 - b) <= bound * (1.0 - a) + slack, "n {n}");
    }
}

/// The same through [`release`]: a cohort of k − 1 and one of k are each released
/// with about the probability the rule says, neither never nor always.
#[test]
fn the_whole_release_applies_the_noisy_rule() {
    const TRIALS: usize = 3_000;
    let policy = Policy::default();
    let rule = Suppression::new(policy.k, policy.epsilon_per_bounty * policy.suppression_share);
    let query: BountyQuery = "count(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500"
        .parse()
        .expect("parses");
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    for n in [policy.k - 1, policy.k] {
        let cohort = iron_cohort(n);
        let released = (0..TRIALS)
            .filter(|_| {
                let r = release(&query, &policy, &cohort, day(2026, 1, 15), &mut rng)
                    .expect("computed");
                assert_eq!(r.suppression, Some(rule));
                assert_eq!(r.cells[0].suppressed, r.cells[0].value.is_none());
                !r.cells[0].suppressed
            })
            .count();
        let p = released as f64 / TRIALS as f64;
        let exact = rule.release_probability(n, policy.k);
        assert!((p - exact).abs() < 0.05, "n {n}: {p} vs {exact}");
    }
}
