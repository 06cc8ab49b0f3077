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

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Pixel size of the PNGs (and the SVGs' view box).
const SIZE: (u32, u32) = (900, 560);

/// The family the font is registered under and the SVGs ask for.
const FAMILY: &str = "sans-serif";

/// The environment variable that names a TrueType font file to use instead of [`FONT_PATHS`].
const FONT_ENV: &str = "EDGECL_FONT";

/// Where a font is looked for, in order, when [`FONT_ENV`] is not set.
const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Line and bar colours (Tableau 20: the ten strong ones, then their light partners),
/// cycled; past twenty series the marker changes too.
const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(174, 199, 232),
    RGBColor(255, 187, 120),
    RGBColor(152, 223, 138),
    RGBColor(255, 152, 150),
    RGBColor(197, 176, 213),
    RGBColor(196, 156, 148),
    RGBColor(247, 182, 210),
    RGBColor(199, 199, 199),
    RGBColor(219, 219, 141),
    RGBColor(158, 218, 229),
];

/// Light grey for grid lines.
const GRID: RGBColor = RGBColor(225, 225, 225);

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

/// Registers the font under [`FAMILY`] on first use; gives the file it came from.
fn font() -> Result<&'static Path> {
    static FONT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match FONT.get_or_init(load_font) {
        Ok(path) => Ok(path),
        Err(e) => Err(anyhow!("{e}")),
    }
}

/// Finds, reads and registers the font (its bytes are leaked: they live as long as plotters'
/// font table).
fn load_font() -> Result<PathBuf, String> {
    let register = |path: &Path| -> Result<(), String> {
        let bytes = std::fs::read(path).map_err(|e| format!("reading the font {}: {e}", path.display()))?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a TrueType or OpenType font", path.display()))
    };
    if let Some(path) = std::env::var_os(FONT_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        register(&path).map_err(|e| format!("{e} (named by {FONT_ENV})"))?;
        return Ok(path);
    }
    for path in FONT_PATHS.iter().map(Path::new).filter(|p| p.is_file()) {
        if register(path).is_ok() {
            return Ok(path.to_path_buf());
        }
    }
    Err(format!(
        "no font for the plots' text: set {FONT_ENV} to a .ttf file, or install one of {} \
         (on Debian or Ubuntu: apt-get install fonts-dejavu-core)",
        FONT_PATHS.join(", ")
    ))
}

fn text(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// The chart area below `title`, with the white background drawn.
fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let inner = root.titled(title, text(22))?;
    Ok(inner.margin(0, 10, 10, 10))
}

/// A marker shape; series past the palette's length get the next shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Circle,
    Triangle,
    Cross,
}

/// Colour and marker of series `k`.
fn series_style(k: usize) -> (RGBColor, Marker) {
    let marker = match (k / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Triangle,
        _ => Marker::Cross,
    };
    (PALETTE[k % PALETTE.len()], marker)
}

fn draw_marker<DB, CT>(area: &DrawingArea<DB, CT>, at: CT::From, marker: Marker, color: RGBColor) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    let style = color.filled();
    match marker {
        Marker::Circle => area.draw(&Circle::new(at, 4, style))?,
        Marker::Triangle => area.draw(&TriangleMarker::new(at, 5, style))?,
        Marker::Cross => area.draw(&Cross::new(at, 4, color.stroke_width(2)))?,
    }
    Ok(())
}

/// What a legend entry shows beside its name.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// A line with its marker.
    Line(RGBColor, Marker),
    /// A filled square.
    Block(RGBColor),
}

/// Splits `area` into the chart (left) and a legend column (right) wide enough for `names`.
fn with_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    names: &[&str],
) -> Result<(DrawingArea<DB, Shift>, DrawingArea<DB, Shift>)>
where
    DB::ErrorType: 'static,
{
    let mut widest = 0;
    for name in names {
        widest = widest.max(area.estimate_text_size(name, &text(14))?.0);
    }
    let width = area.dim_in_pixel().0;
    let legend = (widest + 50).clamp(110, width / 3);
    Ok(area.split_horizontally(width.saturating_sub(legend)))
}

/// Draws the legend entries top down in `area`, as many as fit.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(&str, Key)]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let height = area.dim_in_pixel().1 as i32;
    for (k, (name, key)) in entries.iter().enumerate() {
        let y = 24 + 20 * k as i32;
        if y + 10 > height {
            break;
        }
        match *key {
            Key::Line(color, marker) => {
                area.draw(&PathElement::new(vec![(10, y), (34, y)], color.stroke_width(2)))?;
                draw_marker(area, (22, y), marker, color)?;
            }
            Key::Block(color) => area.draw(&Rectangle::new([(14, y - 6), (28, y + 6)], color.filled()))?,
        }
        area.draw(&Text::new(
            name.to_string(),
            (42, y),
            text(14).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

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
fn number_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Integer tick positions `first..=last`, thinned to at most `most`.
fn integer_ticks(first: usize, last: usize, most: usize) -> Vec<f64> {
    let step = (last + 1 - first).div_ceil(most.max(1)).max(1);
    (first..=last).step_by(step).map(|v| v as f64).collect()
}

/// An `f64` axis whose ticks (and grid lines) are exactly `ticks`; labels come from the
/// chart's formatter.
#[derive(Clone)]
struct TickAxis {
    range: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickAxis {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
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
fn percent_axis() -> TickAxis {
    TickAxis::new(-1.5..101.5, (0..=10).map(|v| f64::from(v) * 10.0).collect())
}

struct AccuracyVsBudget<'a> {
    title: &'a str,
    series: &'a [BudgetSeries],
}

impl Plot for AccuracyVsBudget<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(root, self.title)?;
        let names: Vec<&str> = self.series.iter().map(|s| s.strategy.as_str()).collect();
        let (chart_area, legend_area) = with_legend(&area, &names)?;

        // x is log2(bytes); each series' drawable points, sorted by budget.
        let lines: Vec<Vec<(f64, BudgetPoint)>> = self
            .series
            .iter()
            .map(|s| {
                let mut v: Vec<(f64, BudgetPoint)> = s
                    .points
                    .iter()
                    .filter(|p| p.budget > 0 && p.mean.is_finite())
                    .map(|p| ((p.budget as f64).log2(), *p))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            })
            .collect();
        let mut budgets: Vec<f64> = lines.iter().flatten().map(|(x, _)| *x).collect();
        budgets.sort_by(f64::total_cmp);
        budgets.dedup();
        let (lo, hi) = match (budgets.first(), budgets.last()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (13.0, 16.0), // 8 KiB .. 64 KiB when there is nothing to show
        };
        let pad = ((hi - lo) * 0.06).max(0.5);
        let ticks = if !budgets.is_empty() && budgets.len() <= 12 {
            budgets
        } else {
            integer_ticks(lo.floor().max(0.0) as usize, hi.ceil().max(0.0) as usize, 12)
        };
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(TickAxis::new(lo - pad..hi + pad, ticks), percent_axis())?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc("arena budget (log2 scale)")
            .y_desc("average accuracy (%)")
            .x_label_formatter(&|x| bytes_label(x.exp2()))
            .y_label_formatter(&|y| number_label(*y))
            .label_style(text(13))
            .axis_desc_style(text(15))
            .draw()?;

        let (plot_w, _) = chart.plotting_area().dim_in_pixel();
        let cap = 4.0 * (hi - lo + 2.0 * pad) / f64::from(plot_w.max(1));
        let mut entries = Vec::new();
        for (k, (series, line)) in self.series.iter().zip(&lines).enumerate() {
            let (color, marker) = series_style(k);
            entries.push((series.strategy.as_str(), Key::Line(color, marker)));
            chart.draw_series(LineSeries::new(
                line.iter().map(|(x, p)| (*x, p.mean)),
                color.stroke_width(2),
            ))?;
            for (x, p) in line {
                if p.min.is_finite() && p.max.is_finite() {
                    let bar = color.stroke_width(1);
                    let area = chart.plotting_area();
                    area.draw(&PathElement::new(vec![(*x, p.min), (*x, p.max)], bar))?;
                    area.draw(&PathElement::new(vec![(x - cap, p.min), (x + cap, p.min)], bar))?;
                    area.draw(&PathElement::new(vec![(x - cap, p.max), (x + cap, p.max)], bar))?;
                }
                draw_marker(chart.plotting_area(), (*x, p.mean), marker, color)?;
            }
        }
        draw_legend(&legend_area, &entries)?;
        Ok(())
    }
}

/// Viridis, sampled at five stops and interpolated linearly; `t` in 0..1.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) } * (STOPS.len() - 1) as f64;
    let k = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

struct HeatMap<'a> {
    title: &'a str,
    matrix: &'a [Vec<f64>],
}

impl Plot for HeatMap<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(root, self.title)?;
        let width = area.dim_in_pixel().0;
        let (chart_area, scale_area) = area.split_horizontally(width.saturating_sub(130));
        let rows = self.matrix.len().max(1);
        let cols = self.matrix.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let (r, c) = (rows as f64, cols as f64);
        // Row i is drawn from y = rows-1-i to rows-i, so the first row is on top.
        let x_ticks: Vec<f64> = integer_ticks(1, cols, 25).iter().map(|v| v - 0.5).collect();
        let y_ticks: Vec<f64> = integer_ticks(1, rows, 25).iter().map(|v| r - v + 0.5).collect();
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(TickAxis::new(0.0..c, x_ticks), TickAxis::new(0.0..r, y_ticks))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("evaluated on task")
            .y_desc("after training task")
            .x_label_formatter(&|x| format!("{}", (x + 0.5).round()))
            .y_label_formatter(&|y| format!("{}", (r - y + 0.5).round()))
            .label_style(text(13))
            .axis_desc_style(text(15))
            .draw()?;

        let (plot_w, plot_h) = chart.plotting_area().dim_in_pixel();
        let (cell_w, cell_h) = (f64::from(plot_w) / c, f64::from(plot_h) / r);
        // One decimal where "100.0" fits, whole percents where only "100" does.
        let decimals = usize::from(cell_w >= 50.0 && cell_h >= 30.0);
        let size = (cell_h * 0.5).min(cell_w / (1.0 + decimals as f64)).clamp(6.0, 16.0) as u32;
        for (i, row) in self.matrix.iter().enumerate() {
            let y = r - i as f64;
            for (j, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let x = j as f64;
                let t = v / 100.0;
                chart
                    .plotting_area()
                    .draw(&Rectangle::new([(x, y - 1.0), (x + 1.0, y)], viridis(t).filled()))?;
                let ink = if t > 0.55 { BLACK } else { WHITE };
                chart.plotting_area().draw(&Text::new(
                    format!("{v:.decimals$}"),
                    (x + 0.5, y - 0.5),
                    (FAMILY, size)
                        .into_font()
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))?;
            }
        }

        let mut scale = ChartBuilder::on(&scale_area)
            .margin(10)
            .margin_left(20)
            .x_label_area_size(45)
            .right_y_label_area_size(65)
            .build_cartesian_2d(0f64..1f64, 0f64..100f64)?;
        scale
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc("accuracy (%)")
            .y_labels(6)
            .y_label_formatter(&|y| number_label(*y))
            .label_style(text(13))
            .axis_desc_style(text(15))
            .draw()?;
        scale.draw_series((0..100).map(|v| {
            let v = f64::from(v);
            Rectangle::new([(0.0, v), (1.0, v + 1.0)], viridis((v + 0.5) / 100.0).filled())
        }))?;
        Ok(())
    }
}

struct TaskCurves<'a> {
    title: &'a str,
    matrix: &'a [Vec<f64>],
}

impl Plot for TaskCurves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(root, self.title)?;
        let rows = self.matrix.len();
        let cols = self.matrix.iter().map(Vec::len).max().unwrap_or(0);
        // Task j is tested after training tasks j..rows, so only tasks that were trained count.
        let tasks = rows.min(cols);
        let names: Vec<String> = (1..=tasks).map(|j| format!("task {j}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (chart_area, legend_area) = with_legend(&area, &name_refs)?;

        let last = rows.max(1);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(
                TickAxis::new(0.5..last as f64 + 0.5, integer_ticks(1, last, 20)),
                percent_axis(),
            )?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .x_desc("after training task")
            .y_desc("accuracy (%)")
            .x_label_formatter(&|x| format!("{}", x.round()))
            .y_label_formatter(&|y| number_label(*y))
            .label_style(text(13))
            .axis_desc_style(text(15))
            .draw()?;

        let mut entries = Vec::new();
        for (j, name) in name_refs.iter().enumerate() {
            let (color, marker) = series_style(j);
            entries.push((*name, Key::Line(color, marker)));
            let points: Vec<(f64, f64)> = self.matrix[j..]
                .iter()
                .enumerate()
                .filter_map(|(k, row)| row.get(j).map(|&v| ((j + k + 1) as f64, v)))
                .filter(|(_, v)| v.is_finite())
                .collect();
            chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?;
            for &p in &points {
                draw_marker(chart.plotting_area(), p, marker, color)?;
            }
        }
        draw_legend(&legend_area, &entries)?;
        Ok(())
    }
}

/// The parts of `bar` that are drawn: not `total`, not empty.
fn parts(bar: &Bar) -> impl Iterator<Item = &(String, usize)> {
    bar.parts.iter().filter(|(name, bytes)| name != "total" && *bytes > 0)
}

struct PlanBars<'a> {
    title: &'a str,
    bars: &'a [Bar],
}

impl Plot for PlanBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let area = titled(root, self.title)?;
        // Components in order of first appearance; a component's colour is its index here.
        let mut components: Vec<&str> = Vec::new();
        for (name, _) in self.bars.iter().flat_map(parts) {
            if !components.contains(&name.as_str()) {
                components.push(name);
            }
        }
        let (chart_area, legend_area) = with_legend(&area, &components)?;

        let kib = |bytes: usize| bytes as f64 / 1024.0;
        let tallest = self
            .bars
            .iter()
            .map(|b| kib(parts(b).map(|(_, n)| n).sum()))
            .fold(0.0, f64::max);
        let n = self.bars.len().max(1);
        let (plot_w, _) = chart_area.dim_in_pixel();
        let mut label_w = 0;
        for bar in self.bars {
            label_w = label_w.max(chart_area.estimate_text_size(&bar.label, &text(12))?.0);
        }
        // Labels side by side when they fit, else turned to read downwards from under the bar.
        let slot = plot_w.saturating_sub(75) / n as u32;
        let turned = label_w + 8 > slot;
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(10)
            .x_label_area_size(if turned { (label_w + 20).min(220) } else { 45 })
            .y_label_area_size(60)
            .build_cartesian_2d(
                TickAxis::new(-0.5..n as f64 - 0.5, integer_ticks(0, n - 1, n)),
                0f64..(tallest * 1.12).max(1.0),
            )?;
        let labels: Vec<&str> = self.bars.iter().map(|b| b.label.as_str()).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .y_desc("arena bytes (KiB)")
            .y_label_formatter(&|y| number_label(*y))
            .x_label_formatter(&|x| {
                let k = x.round();
                match labels.get(k as usize) {
                    Some(label) if k >= 0.0 && !turned => label.to_string(),
                    _ => String::new(),
                }
            })
            .x_label_style(text(12))
            .y_label_style(text(13))
            .axis_desc_style(text(15))
            .draw()?;
        if turned {
            // The backend's pixels are the root's, so the label goes on the root.
            for (k, label) in labels.iter().enumerate() {
                let (x, y) = chart.backend_coord(&(k as f64, 0.0));
                root.draw(&Text::new(
                    label.to_string(),
                    (x, y + 10),
                    text(12)
                        .transform(FontTransform::Rotate90)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))?;
            }
        }

        for (k, bar) in self.bars.iter().enumerate() {
            let x = k as f64;
            let mut base = 0.0;
            for (name, bytes) in parts(bar) {
                let top = base + kib(*bytes);
                let c = components.iter().position(|c| c == name).unwrap_or(0);
                chart.plotting_area().draw(&Rectangle::new(
                    [(x - 0.35, base), (x + 0.35, top)],
                    series_style(c).0.filled(),
                ))?;
                base = top;
            }
            if base > 0.0 {
                chart.plotting_area().draw(&Text::new(
                    format!("{base:.1}"),
                    (x, base),
                    text(11).pos(Pos::new(HPos::Center, VPos::Bottom)),
                ))?;
            }
        }
        let entries: Vec<(&str, Key)> = components
            .iter()
            .enumerate()
            .map(|(c, name)| (*name, Key::Block(series_style(c).0)))
            .collect();
        draw_legend(&legend_area, &entries)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
