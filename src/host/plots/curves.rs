//! The task curves: each task's accuracy over the training of later tasks.

use super::axes::{integer_ticks, number_label, percent_axis, TickAxis};
use super::style::{draw_legend, draw_marker, series_style, text, titled, with_legend, Key, GRID};
use super::Plot;
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

pub(super) struct TaskCurves<'a> {
    pub(super) title: &'a str,
    pub(super) matrix: &'a [Vec<f64>],
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
