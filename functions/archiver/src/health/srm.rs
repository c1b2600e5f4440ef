//! The sample-ratio-mismatch test: Pearson's chi-squared goodness of fit of the units seen per
//! variant against the expected split, as `scipy.stats.chisquare(f_obs, f_exp)` with f_exp the
//! normalised weights times the total (checked against scipy by tests/it/srm.rs).

use statrs::distribution::{ChiSquared, ContinuousCDF};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Srm {
    pub chi_squared: f64,
    pub degrees_of_freedom: u32,
    /// The chi-squared survival function at the statistic, k − 1 degrees of freedom.
    pub p_value: f64,
}

/// None when there is nothing to test: fewer than two variants, no units, lengths that differ
/// or a weight that is not a positive finite number.
pub fn srm(observed: &[u64], expected_weights: &[f64]) -> Option<Srm> {
    if observed.len() < 2 || observed.len() != expected_weights.len() {
        return None;
    }
    if !expected_weights.iter().all(|w| w.is_finite() && *w > 0.0) {
        return None;
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return None;
    }
    let chi_squared = observed
        .iter()
        .zip(shares(expected_weights))
        .map(|(&o, share)| {
            let expected = share * total as f64;
            let diff = o as f64 - expected;
            match (expected > 0.0, o) {
                (true, _) => diff * diff / expected,
                // A share too small for a double (weights 1e308 and 1e-308): no unit is
                // expected there, so none seen adds nothing (not 0/0) and any is a mismatch.
                (false, 0) => 0.0,
                (false, _) => f64::INFINITY,
            }
        })
        .sum::<f64>();
    let degrees_of_freedom = u32::try_from(observed.len() - 1).ok()?;
    let p_value = ChiSquared::new(f64::from(degrees_of_freedom))
        .ok()?
        .sf(chi_squared);
    Some(Srm {
        chi_squared,
        degrees_of_freedom,
        p_value,
    })
}

/// Each weight's share of their sum, for positive finite weights of any magnitude: scaled by
/// the largest first, so that the sum cannot overflow to infinity (weights near f64::MAX would
/// make every share 0) nor lose the small weights' precision (subnormal ones).
pub fn shares(weights: &[f64]) -> Vec<f64> {
    let max = weights.iter().copied().fold(0.0, f64::max);
    if !(max.is_finite() && max > 0.0) {
        return vec![0.0; weights.len()];
    }
    let scaled: Vec<f64> = weights.iter().map(|w| w / max).collect();
    // Between 1 and the number of weights.
    let sum: f64 = scaled.iter().sum();
    scaled.iter().map(|w| w / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_test() {
        for (observed, weights) in [
            (&[10u64][..], &[1.0][..]),
            (&[0, 0], &[1.0, 1.0]),
            (&[5, 5], &[1.0]),
            (&[5, 5], &[1.0, 0.0]),
            (&[5, 5], &[1.0, f64::NAN]),
            (&[5, 5], &[1.0, f64::INFINITY]),
        ] {
            assert_eq!(srm(observed, weights), None, "{observed:?} {weights:?}");
        }
    }

    #[test]
    fn an_exact_split_has_p_one() {
        let s = srm(&[500, 250, 250], &[2.0, 1.0, 1.0]).expect("testable");
        assert_eq!((s.chi_squared, s.degrees_of_freedom), (0.0, 2));
        assert!((s.p_value - 1.0).abs() < 1e-15, "{s:?}");
    }

    #[test]
    fn a_textbook_case() {
        // 1 000 units on a 50/50 split, 540 / 460: chi2 = 6.4, p = erfc(sqrt(3.2)).
        let s = srm(&[540, 460], &[1.0, 1.0]).expect("testable");
        assert!((s.chi_squared - 6.4).abs() < 1e-12, "{s:?}");
        assert!((s.p_value - 0.011_412_036_386_001_7).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn extreme_weights_neither_overflow_nor_underflow_into_an_alarm() {
        // Each pair is a 50/50 split however large or small the weights.
        for w in [f64::MAX, 1e308, 1e-308, 5e-324, 1.0] {
            let s = srm(&[500, 500], &[w, w]).expect("testable");
            assert_eq!(s.chi_squared, 0.0, "{w:e}: {s:?}");
            assert!((s.p_value - 1.0).abs() < 1e-15, "{w:e}: {s:?}");
        }
        // 3:1 at either end of the range, against units split 3:1.
        for (big, small) in [
            (f64::MAX, f64::MAX / 3.0),
            (1.5e308, 5e307),
            (3e-308, 1e-308),
            (1.5e-323, 5e-324),
        ] {
            let s = srm(&[750, 250], &[big, small]).expect("testable");
            assert!(s.chi_squared.abs() < 1e-9, "{big:e} {small:e}: {s:?}");
            assert!(s.p_value > 0.99, "{big:e} {small:e}: {s:?}");
        }
    }

    #[test]
    fn a_share_below_a_double_is_no_unit_expected_never_nan() {
        // 1e308 against 1e-308: the second variant's share is 1e-616, zero as a double.
        let s = srm(&[1000, 0], &[1e308, 1e-308]).expect("testable");
        assert_eq!(s.chi_squared, 0.0, "{s:?}");
        assert!((s.p_value - 1.0).abs() < 1e-15, "{s:?}");
        let s = srm(&[999, 1], &[1e308, 1e-308]).expect("testable");
        assert!(s.p_value == 0.0 && !s.p_value.is_nan(), "{s:?}");
        assert_eq!(shares(&[1e308, 1e308, 1e308]), vec![1.0 / 3.0; 3]);
        assert_eq!(shares(&[1e308, 1e-308]), vec![1.0, 0.0]);
    }
}
