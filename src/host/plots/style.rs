//! The look every plot shares: size, font (found at run time), palette, title, markers and
//! legend.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Pixel size of the PNGs (and the SVGs' view box).
pub(super) const SIZE: (u32, u32) = (900, 560);

/// The family the font is registered under and the SVGs ask for.
pub(super) const FAMILY: &str = "sans-serif";

/// The environment variable that names a TrueType font file to use instead of [`FONT_PATHS`].
const FONT_ENV: &str = "EDGECL_FONT";

/// Where a font is looked for, in order, when [`FONT_ENV`] is not set.
pub(super) const FONT_PATHS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Line and bar colours (Tableau 20: the ten strong ones, then their light partners),
/// cycled; past twenty series the marker changes too.
pub(super) const PALETTE: [RGBColor; 20] = [
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
pub(super) const GRID: RGBColor = RGBColor(225, 225, 225);

/// Registers the font under [`FAMILY`] on first use; gives the file it came from.
pub(super) fn font() -> Result<&'static Path> {
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

pub(super) fn text(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// The chart area below `title`, with the white background drawn.
pub(super) fn titled<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let inner = root.titled(title, text(22))?;
    Ok(inner.margin(0, 10, 10, 10))
}

/// A marker shape; series past the palette's length get the next shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Marker {
    Circle,
    Triangle,
    Cross,
}

/// Colour and marker of series `k`.
pub(super) fn series_style(k: usize) -> (RGBColor, Marker) {
    let marker = match (k / PALETTE.len()) % 3 {
        0 => Marker::Circle,
        1 => Marker::Triangle,
        _ => Marker::Cross,
    };
    (PALETTE[k % PALETTE.len()], marker)
}

pub(super) fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    marker: Marker,
    color: RGBColor,
) -> Result<()>
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
pub(super) enum Key {
    /// A line with its marker.
    Line(RGBColor, Marker),
    /// A filled square.
    Block(RGBColor),
}

/// Splits `area` into the chart (left) and a legend column (right) wide enough for `names`.
pub(super) fn with_legend<DB: DrawingBackend>(
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
pub(super) fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[(&str, Key)]) -> Result<()>
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
