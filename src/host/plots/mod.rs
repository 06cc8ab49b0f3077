//! The plots of a budget sweep, each written twice: `STEM.png` (900 x 560) and `STEM.svg`.
//!
//! - [`accuracy_vs_budget`]: average accuracy against the arena budget, one line per strategy,
//!   the seeds' spread as error bars.
//! - [`heat_map`]: one accuracy matrix as a heat map.
//! - [`task_curves`]: each task's accuracy over the training of later tasks.
//! - [`plan_bars`]: the plan's bytes per component as stacked bars.
//!
//! Accuracies are taken as percent (0..100), as [`Report::accuracy_matrix`] and
//! [`Report::avg_accuracy`] store them; nothing is rescaled. NaN values are skipped.
//!
//! Text is drawn with a TrueType font read at run time, registered once as `sans-serif`;
//! the SVGs name the same family. The font is the file named by `EDGECL_FONT`, else the
//! first readable one of DejaVu Sans (`/usr/share/fonts/truetype/dejavu/`,
//! `/usr/share/fonts/TTF/`, `/usr/share/fonts/dejavu/`) and Arial (`/Library/Fonts/`,
//! `/System/Library/Fonts/Supplemental/`). Without one every plot fails with an error that
//! names those paths and how to install DejaVu.
//!
//! [`Report::accuracy_matrix`]: crate::host::report::Report::accuracy_matrix
//! [`Report::avg_accuracy`]: crate::host::report::Report::avg_accuracy

mod accuracy;
mod axes;
mod bars;
mod curves;
mod heat;
mod style;

pub use axes::bytes_label;

use accuracy::AccuracyVsBudget;
use anyhow::{bail, Context, Result};
use bars::PlanBars;
use curves::TaskCurves;
use heat::HeatMap;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use style::{font, SIZE};

/// One strategy's accuracy at each budget: mean and the seeds' min and max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetPoint {
    /// Arena bytes.
    pub budget: usize,
    /// Mean accuracy (percent) over the seeds.
    pub mean: f64,
    /// Lowest accuracy (percent) of a seed.
    pub min: f64,
    /// Highest accuracy (percent) of a seed.
    pub max: f64,
}

/// One strategy's line in [`accuracy_vs_budget`].
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSeries {
    /// Strategy name, shown in the legend.
    pub strategy: String,
    /// Its accuracy per budget, in any order.
    pub points: Vec<BudgetPoint>,
}

/// One stacked bar of [`plan_bars`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// Shown under the bar (e.g. a strategy at a budget).
    pub label: String,
    /// `(component, bytes)`, stacked bottom up in this order; a part named `total` is skipped.
    pub parts: Vec<(String, usize)>,
}

/// Average accuracy (%) against budget (x axis log2-scaled in bytes, ticks like "8 KiB"), one
/// coloured line with markers per strategy, the seed spread as a vertical error bar
/// (min..max) at each point; y axis 0..100. Points with a NaN mean or a zero budget are
/// skipped, an error bar with a NaN end is left out.
pub fn accuracy_vs_budget(stem: &Path, title: &str, series: &[BudgetSeries]) -> Result<()> {
    render(stem, &AccuracyVsBudget { title, series })
}

/// The accuracy matrix as a heat map: row `i` = after training task `i+1`, column `j` = test
/// accuracy (%) on task `j+1`. Only `j <= i` cells are meaningful, but every given value is
/// drawn, its value printed in the cell; NaN (and infinite) cells are left blank. Colour scale 0..100.
pub fn heat_map(stem: &Path, title: &str, matrix: &[Vec<f64>]) -> Result<()> {
    render(stem, &HeatMap { title, matrix })
}

/// Accuracy of each task over time: one line per task `j`, x = after training task `i`
/// (`i >= j`), y = `matrix[i][j]` in percent.
pub fn task_curves(stem: &Path, title: &str, matrix: &[Vec<f64>]) -> Result<()> {
    render(stem, &TaskCurves { title, matrix })
}

/// The plan's bytes per component as stacked bars: one bar per [`Bar`], stacked from its
/// parts; one legend entry per component name, with the same colour in every bar. Y axis in
/// KiB.
pub fn plan_bars(stem: &Path, title: &str, bars: &[Bar]) -> Result<()> {
    render(stem, &PlanBars { title, bars })
}

/// A plot that can be drawn on any backend.
trait Plot {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Draws `plot` into `STEM.png` and `STEM.svg`.
fn render(stem: &Path, plot: &impl Plot) -> Result<()> {
    if stem.file_name().is_none() {
        bail!("{} names no file to write the plot to", stem.display());
    }
    font()?;
    if let Some(dir) = stem.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let png = with_suffix(stem, ".png");
    let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
    plot.draw(&root)
        .and_then(|()| Ok(root.present()?))
        .with_context(|| format!("drawing {}", png.display()))?;
    let svg = with_suffix(stem, ".svg");
    let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
    plot.draw(&root)
        .and_then(|()| Ok(root.present()?))
        .with_context(|| format!("drawing {}", svg.display()))?;
    Ok(())
}

/// `stem` with `suffix` appended (not replacing an extension: `a.b` gives `a.b.png`).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(stem.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::heat::viridis;
    use super::style::{FAMILY, FONT_PATHS, PALETTE};
    use super::*;

    /// A fresh folder for one test's plots.
    fn out_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edgecl-plots-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Whether a font is there; without one, checks that plotting says how to get one.
    fn have_font(stem: &Path) -> bool {
        match font() {
            Ok(_) => true,
            Err(e) => {
                eprintln!("no font, PNG and SVG checks skipped: {e}");
                let e = heat_map(stem, "t", &[]).unwrap_err().to_string();
                assert!(e.contains("fonts-dejavu-core") && e.contains(FONT_PATHS[0]), "{e}");
                false
            }
        }
    }

    /// Decodes `STEM.png`: 900 x 560, and the pixels of each of `colors` in the plot area.
    fn png_counts(stem: &Path, colors: &[RGBColor]) -> Vec<usize> {
        let png = with_suffix(stem, ".png");
        let img = image::open(&png)
            .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
            .to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        let mut counts = vec![0; colors.len()];
        for (x, y, p) in img.enumerate_pixels() {
            if (60..780).contains(&x) && (50..500).contains(&y) {
                for (n, c) in counts.iter_mut().zip(colors) {
                    *n += usize::from(p.0 == [c.0, c.1, c.2]);
                }
            }
        }
        counts
    }

    /// Pixels in the plot area of clearly coloured (not grey) ink in `STEM.png`.
    fn png_coloured(stem: &Path) -> usize {
        let img = image::open(with_suffix(stem, ".png")).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        img.enumerate_pixels()
            .filter(|(x, y, p)| {
                let (hi, lo) = (p.0.iter().max().unwrap(), p.0.iter().min().unwrap());
                (60..780).contains(x) && (50..500).contains(y) && hi - lo > 60
            })
            .count()
    }

    /// `STEM.svg`, checked to name the registered family and to hold each of `texts`.
    fn svg_with(stem: &Path, texts: &[&str]) -> String {
        let svg = std::fs::read_to_string(with_suffix(stem, ".svg")).unwrap();
        assert!(svg.contains(&format!("font-family=\"{FAMILY}\"")));
        for t in texts {
            assert!(svg.contains(&format!(">\n{t}\n</text>")), "{t:?} not in the SVG");
        }
        svg
    }

    fn point(budget: usize, mean: f64, spread: f64) -> BudgetPoint {
        BudgetPoint {
            budget,
            mean,
            min: mean - spread,
            max: mean + spread,
        }
    }

    #[test]
    fn bytes_are_labelled_in_binary_units() {
        assert_eq!(bytes_label(512.0), "512 B");
        assert_eq!(bytes_label(8192.0), "8 KiB");
        assert_eq!(bytes_label(1536.0), "1.5 KiB");
        assert_eq!(bytes_label(1024.0 * 1024.0), "1 MiB");
    }

    #[test]
    fn viridis_runs_from_purple_to_yellow() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
    }

    #[test]
    fn accuracy_vs_budget_draws_a_line_per_strategy() {
        let stem = out_dir("budget").join("accuracy");
        if !have_font(&stem) {
            return;
        }
        let series = vec![
            BudgetSeries {
                strategy: "finetune".into(),
                points: vec![point(8192, 20.0, 3.0), point(16384, 21.0, 2.0), point(32768, 22.0, 4.0)],
            },
            BudgetSeries {
                strategy: "ewc".into(),
                // Out of order on purpose: the line follows the budgets.
                points: vec![point(32768, 80.0, 5.0), point(8192, 40.0, 6.0), point(16384, 65.0, 1.0)],
            },
        ];
        accuracy_vs_budget(&stem, "Split MNIST: accuracy by budget", &series).unwrap();
        let counts = png_counts(&stem, &PALETTE[..2]);
        assert!(counts.iter().all(|&n| n > 200), "series pixels {counts:?}");
        svg_with(
            &stem,
            &[
                "Split MNIST: accuracy by budget",
                "finetune",
                "ewc",
                "8 KiB",
                "16 KiB",
                "32 KiB",
            ],
        );
        let _ = std::fs::remove_dir_all(stem.parent().unwrap());
    }

    #[test]
    fn heat_map_colours_cells_and_prints_values() {
        let stem = out_dir("heat").join("matrix");
        if !have_font(&stem) {
            return;
        }
        let matrix = vec![vec![99.5, 10.0, 12.0], vec![60.25, 97.0, 11.0], vec![40.0, 70.0, 98.0]];
        heat_map(&stem, "Accuracy matrix: ewc at 16 KiB", &matrix).unwrap();
        let counts = png_counts(&stem, &[viridis(0.1), viridis(0.97)]);
        assert!(counts.iter().all(|&n| n > 1000), "cell pixels {counts:?}");
        svg_with(
            &stem,
            &[
                "Accuracy matrix: ewc at 16 KiB",
                "99.5",
                "60.2",
                "10.0",
                "evaluated on task",
                "after training task",
            ],
        );
        let _ = std::fs::remove_dir_all(stem.parent().unwrap());
    }

    #[test]
    fn task_curves_draw_a_line_per_task() {
        let stem = out_dir("curves").join("tasks");
        if !have_font(&stem) {
            return;
        }
        let matrix = vec![vec![99.0, 10.0, 10.0], vec![60.0, 98.0, 10.0], vec![40.0, 70.0, 97.0]];
        task_curves(&stem, "Forgetting under finetune", &matrix).unwrap();
        // Task 3 is a single marker; tasks 1 and 2 are lines.
        let counts = png_counts(&stem, &PALETTE[..3]);
        assert!(
            counts[0] > 200 && counts[1] > 200 && counts[2] > 20,
            "task pixels {counts:?}"
        );
        svg_with(&stem, &["Forgetting under finetune", "task 1", "task 2", "task 3"]);
        let _ = std::fs::remove_dir_all(stem.parent().unwrap());
    }

    #[test]
    fn plan_bars_give_a_component_one_colour_in_every_bar() {
        let stem = out_dir("bars").join("plan");
        if !have_font(&stem) {
            return;
        }
        let bar = |label: &str, weights: usize, replay: usize| Bar {
            label: label.into(),
            parts: vec![
                ("weights".into(), weights),
                ("replay buffer".into(), replay),
                ("total".into(), weights + replay),
            ],
        };
        let bars = vec![bar("replay @ 16 KiB", 8192, 6000), bar("replay @ 32 KiB", 8192, 20000)];
        plan_bars(&stem, "Plan bytes per component", &bars).unwrap();
        let counts = png_counts(&stem, &PALETTE[..3]);
        assert!(counts[0] > 1000 && counts[1] > 1000, "component pixels {counts:?}");
        assert_eq!(counts[2], 0, "`total` was drawn as a component");
        let svg = svg_with(
            &stem,
            &[
                "Plan bytes per component",
                "weights",
                "replay buffer",
                "replay @ 16 KiB",
                "replay @ 32 KiB",
            ],
        );
        assert!(!svg.contains("\ntotal\n"));
        let _ = std::fs::remove_dir_all(stem.parent().unwrap());
    }

    #[test]
    fn nan_and_empty_inputs_draw_labelled_charts() {
        let dir = out_dir("degenerate");
        if !have_font(&dir.join("x")) {
            return;
        }
        let nan = f64::NAN;
        let series = vec![
            BudgetSeries {
                strategy: "nan".into(),
                points: vec![point(8192, nan, 1.0), point(0, 50.0, 1.0), point(16384, 50.0, nan)],
            },
            BudgetSeries {
                strategy: "none".into(),
                points: Vec::new(),
            },
        ];
        let matrix = vec![vec![nan, 1.0], vec![nan, nan, nan], Vec::new()];
        let bars = vec![
            Bar {
                label: "empty".into(),
                parts: Vec::new(),
            },
            Bar {
                label: "zero".into(),
                parts: vec![("weights".into(), 0)],
            },
        ];
        let stems: Vec<PathBuf> = (0..8).map(|k| dir.join(format!("plot{k}"))).collect();
        accuracy_vs_budget(&stems[0], "empty budgets", &[]).unwrap();
        accuracy_vs_budget(&stems[1], "nan budgets", &series).unwrap();
        heat_map(&stems[2], "empty matrix", &[]).unwrap();
        heat_map(&stems[3], "nan matrix", &matrix).unwrap();
        task_curves(&stems[4], "empty curves", &[]).unwrap();
        task_curves(&stems[5], "nan curves", &matrix).unwrap();
        plan_bars(&stems[6], "no bars", &[]).unwrap();
        plan_bars(&stems[7], "empty bars", &bars).unwrap();
        for (stem, title) in stems.iter().zip([
            "empty budgets",
            "nan budgets",
            "empty matrix",
            "nan matrix",
            "empty curves",
            "nan curves",
            "no bars",
            "empty bars",
        ]) {
            let svg = svg_with(stem, &[title]);
            assert!(!svg.contains("NaN"), "{title}: NaN printed");
            png_counts(stem, &[]);
        }
        // The one drawable budget point (16 KiB at 50 %) and the one drawable cell are there.
        assert!(png_coloured(&stems[1]) > 20);
        assert!(png_coloured(&stems[3]) > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stem_with_a_dot_keeps_its_name() {
        assert_eq!(with_suffix(Path::new("out/a.b"), ".png"), Path::new("out/a.b.png"));
        assert!(heat_map(Path::new("/"), "t", &[]).is_err());
    }
}
