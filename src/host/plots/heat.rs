//! The heat map of one accuracy matrix, coloured with viridis.

use super::axes::{integer_ticks, number_label, TickAxis};
use super::style::{text, titled, FAMILY};
use super::Plot;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Viridis, sampled at five stops and interpolated linearly; `t` in 0..1.
pub(super) fn viridis(t: f64) -> RGBColor {
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

pub(super) struct HeatMap<'a> {
    pub(super) title: &'a str,
    pub(super) matrix: &'a [Vec<f64>],
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
