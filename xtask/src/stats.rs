//! The statistics the benchmarks report: medians and ratios of interleaved rounds.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The median (the mean of the middle two for an even count), like Python's
/// `statistics.median`; None for no values.
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Numbers, one per line (blank lines skipped).
pub fn read_numbers(text: &str, origin: &str) -> Result<Vec<f64>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            l.parse()
                .with_context(|| format!("{origin}: value {}: {l:?} is not a number", i + 1))
        })
        .collect()
}

/// `cargo xtask stats median`.
pub fn median_of(file: Option<&Path>) -> Result<f64> {
    let (text, origin) = match file {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            std::io::read_to_string(std::io::stdin())?,
            "stdin".to_string(),
        ),
    };
    median(read_numbers(&text, &origin)?).with_context(|| format!("{origin}: no numbers"))
}

/// `cargo xtask stats ratio`.
pub fn ratio(numerator: f64, denominator: f64) -> Result<f64> {
    if denominator == 0.0 {
        bail!("{numerator} / 0: the denominator is 0");
    }
    Ok(numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median([3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median([4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median([7.0]), Some(7.0));
        assert_eq!(median([]), None);
    }

    #[test]
    fn numbers_name_the_bad_line() {
        assert_eq!(read_numbers("1.5\n\n2\n", "f").unwrap(), vec![1.5, 2.0]);
        let err = read_numbers("1\nx\n", "ratios").unwrap_err().to_string();
        assert!(err.contains("ratios: value 2"), "{err}");
        assert!(ratio(1.0, 0.0).is_err());
    }
}
