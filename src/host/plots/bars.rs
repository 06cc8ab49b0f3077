//! The plan bars: the plan's bytes per component, stacked.

use super::axes::{integer_ticks, number_label, TickAxis};
use super::style::{draw_legend, series_style, text, titled, with_legend, Key, GRID};
use super::{Bar, Plot};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The parts of `bar` that are drawn: not `total`, not empty.
pub(super) fn parts(bar: &Bar) -> impl Iterator<Item = &(String, usize)> {
    bar.parts.iter().filter(|(name, bytes)| name != "total" && *bytes > 0)
}

pub(super) struct PlanBars<'a> {
    pub(super) title: &'a str,
    pub(super) bars: &'a [Bar],
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
