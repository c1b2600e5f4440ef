//! The sample-ratio-mismatch test: Pearson's chi-squared goodness of fit of the units seen per
//! variant against the expected split, as `scipy.stats.chisquare(f_obs, f_exp)` with f_exp the
//! normalised weights times the total (checked against scipy by tests/srm.rs).

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
    let weight_sum: f64 = expected_weights.iter().sum();
    let chi_squared = observed
        .iter()
        .zip(expected_weights)
        .map(|(&o, &w)| {
            let expected = w / weight_sum * total as f64;
            let diff = o as f64 - expected;
            diff * diff / expected
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
}
