//! The differentially private mechanisms: Laplace noise and the exponential
//! mechanism for quantiles.
//!
//! Floating-point caveat: these are the textbook mechanisms on `f64`. Mironov (2012)
//! showed that sampling Laplace noise by the inverse CDF in floating point leaves
//! gaps in the set of reachable outputs that can, in principle, reveal the true value
//! of a continuous release; the snapping mechanism or discrete (geometric) noise
//! avoids this. Counts and histogram bins are rounded to integers, which removes most
//! of that structure for them; sums, means and quantiles are released as raw `f64`
//! and carry the caveat.

use rand_core::CryptoRng;

/// A uniform draw in the open interval (0, 1), from 53 random bits.
pub fn open_unit(rng: &mut impl CryptoRng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    ((rng.next_u64() >> 11) as f64 + 0.5) * SCALE
}

/// A draw from Laplace(0, `scale`) by the inverse CDF:
/// with `u` uniform in (-½, ½), `-scale · sign(u) · ln(1 − 2|u|)`.
pub fn laplace(scale: f64, rng: &mut impl CryptoRng) -> f64 {
    let u = open_unit(rng) - 0.5;
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// The CDF of Laplace(0, `scale`) at `x`.
pub fn laplace_cdf(x: f64, scale: f64) -> f64 {
    if x < 0.0 { 0.5 * (x / scale).exp() } else { 1.0 - 0.5 * (-x / scale).exp() }
}

/// The exponential mechanism for the `q`-quantile (`q` in 0..=1) of `sorted`
/// (ascending, every value within `lo..=hi`), with privacy `epsilon` when one
/// individual changes at most `sensitivity` values.
///
/// The candidates are the intervals between consecutive points of
/// `lo, sorted…, hi`; interval `i` (with `i` values below it) scores
/// `−|i − q·n|` and is chosen with probability proportional to its length times
/// `exp(ε · score / (2 · sensitivity))`; the answer is uniform within it.
pub fn quantile(
    sorted: &[f64],
    q: f64,
    lo: f64,
    hi: f64,
    epsilon: f64,
    sensitivity: f64,
    rng: &mut impl CryptoRng,
) -> f64 {
    let n = sorted.len();
    let target = q * n as f64;
    let point = |i: usize| -> f64 {
        if i == 0 {
            lo
        } else if i > n {
            hi
        } else {
            sorted[i - 1]
        }
    };
    // Log weights, -inf for empty intervals.
    let logs: Vec<f64> = (0..=n)
        .map(|i| {
            let len = point(i + 1) - point(i);
            if len > 0.0 {
                len.ln() - epsilon * (i as f64 - target).abs() / (2.0 * sensitivity)
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        // Every interval is empty: lo == hi, which a valid query never has.
        return lo;
    }
    let weights: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut pick = open_unit(rng) * total;
    let mut chosen = weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
    for (i, w) in weights.iter().enumerate() {
        if pick < *w {
            chosen = i;
            break;
        }
        pick -= w;
    }
    let (a, b) = (point(chosen), point(chosen + 1));
    (a + open_unit(rng) * (b - a)).max(a).min(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};

    #[test]
    fn laplace_is_symmetric_and_finite() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let draws: Vec<f64> = (0..10_000).map(|_| laplace(1.0, &mut rng)).collect();
        assert!(draws.iter().all(|d| d.is_finite()));
        let positive = draws.iter().filter(|d| **d > 0.0).count();
        assert!((4_700..5_300).contains(&positive), "{positive}");
    }

    #[test]
    fn quantile_concentrates_near_the_median() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let sorted: Vec<f64> = (0..1001).map(f64::from).collect();
        let mut hits = 0;
        for _ in 0..200 {
            let m = quantile(&sorted, 0.5, 0.0, 1000.0, 1.0, 1.0, &mut rng);
            assert!((0.0..=1000.0).contains(&m));
            if (450.0..=550.0).contains(&m) {
                hits += 1;
            }
        }
        assert!(hits > 190, "{hits}");
    }
}
