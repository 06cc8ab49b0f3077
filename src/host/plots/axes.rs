//! Axis labels and ticks: byte counts, plain numbers, integer ticks and the percent axis.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use std::ops::Range;

/// `bytes` as "512 B", "8 KiB", "1.5 MiB" (axis ticks, and the sweep report's tables).
pub fn bytes_label(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A tick value without a trailing `.0`.
pub(super) fn number_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Integer tick positions `first..=last`, thinned to at most `most`.
pub(super) fn integer_ticks(first: usize, last: usize, most: usize) -> Vec<f64> {
    let step = (last + 1 - first).div_ceil(most.max(1)).max(1);
    (first..=last).step_by(step).map(|v| v as f64).collect()
}

/// An `f64` axis whose ticks (and grid lines) are exactly `ticks`; labels come from the
/// chart's formatter.
#[derive(Clone)]
pub(super) struct TickAxis {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickAxis {
    pub(super) fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        let ticks = ticks.into_iter().filter(|t| range.contains(t)).collect();
        TickAxis {
            range: range.into(),
            ticks,
        }
    }
}

impl Ranged for TickAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.range.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.range()
    }
}

/// Ticks 0, 10, .., 100, with room beyond both ends for the markers of 0 % and 100 %.
pub(super) fn percent_axis() -> TickAxis {
    TickAxis::new(-1.5..101.5, (0..=10).map(|v| f64::from(v) * 10.0).collect())
}
