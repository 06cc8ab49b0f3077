//! The accuracy-against-budget plot: one line per strategy, the seeds' spread as error bars.

use super::axes::{bytes_label, integer_ticks, number_label, percent_axis, TickAxis};
use super::style::{draw_legend, draw_marker, series_style, text, titled, with_legend, Key, GRID};
use super::{BudgetPoint, BudgetSeries, Plot};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

pub(super) struct AccuracyVsBudget<'a> {
    pub(super) title: &'a str,
    pub(super) series: &'a [BudgetSeries],
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
