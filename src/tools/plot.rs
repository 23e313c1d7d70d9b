//! Pictures of a run, drawn with plotters as PNG or SVG bytes: the lecture's figure of the
//! count matrix, and the losses against steps. Text is rendered in pure Rust (ab_glyph) with
//! the font built into the binary (data/fonts/), so no system font library is needed.

use std::path::Path;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::checkpoint::LogEntry;
use crate::data::Vocab;
use crate::model::context_label;

/// DejaVu Sans Mono (Bitstream Vera license, data/fonts/LICENSE-DejaVu.txt).
const FONT: &[u8] = include_bytes!("../../data/fonts/DejaVuSansMono.ttf");
/// Labels smaller than this are left out.
const SMALLEST_LABEL_PX: f64 = 6.0;
/// The height of the title band above the grid.
const TITLE_PX: u32 = 56;
const MARGIN_PX: u32 = 12;
/// The most rows or columns of a grid: at 2 px a cell about 2,000 px a side (the 729 x 27
/// trigram table is drawn; a vocabulary of 1,025 symbols is not).
pub const MAX_GRID_SIDE: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format a file name asks for by its extension.
    pub fn of_path(path: &Path) -> anyhow::Result<Format> {
        let extension = path.extension().and_then(|e| e.to_str());
        Ok(match extension.map(str::to_ascii_lowercase).as_deref() {
            Some("png") => Format::Png,
            Some("svg") => Format::Svg,
            _ => anyhow::bail!(
                "{}: give a file name ending in .png or .svg",
                path.display()
            ),
        })
    }
}

fn draw_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A picture: its size and how it draws (and presents) itself on any backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;

    /// The picture as PNG or SVG bytes.
    fn bytes(&self, format: Format) -> anyhow::Result<Vec<u8>> {
        static FONT_ONCE: std::sync::Once = std::sync::Once::new();
        FONT_ONCE.call_once(|| {
            for family in ["sans-serif", "monospace"] {
                plotters::style::register_font(family, FontStyle::Normal, FONT)
                    .unwrap_or_else(|_| panic!("the built-in font is a valid TrueType file"));
            }
        });
        let size = self.size();
        if format == Format::Svg {
            let mut svg = String::new();
            self.draw(&SVGBackend::with_string(&mut svg, size).into_drawing_area())?;
            return Ok(svg.into_bytes());
        }
        let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
        self.draw(&BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area())?;
        encode_png(&rgb, size)
    }
}

/// RGB pixels, row by row, as a PNG file.
pub fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(draw_error)?;
    writer.write_image_data(rgb).map_err(draw_error)?;
    writer.finish().map_err(draw_error)?;
    Ok(bytes)
}

/// matplotlib's `Blues` (ColorBrewer), from white-ish at 0 to dark blue at 1.
fn blues(t: f64) -> RGBColor {
    const STOPS: [u8; 27] = [
        247, 251, 255, 222, 235, 247, 198, 219, 239, 158, 202, 225, 107, 174, 214, 66, 146, 198,
        33, 113, 181, 8, 81, 156, 8, 48, 107,
    ];
    let x = t.clamp(0.0, 1.0) * 8.0;
    let i = (x.floor() as usize).min(7);
    let mix = |k: usize| {
        let (a, b) = (STOPS[3 * i + k] as f64, STOPS[3 * i + 3 + k] as f64);
        (a + (b - a) * (x - i as f64)).round() as u8
    };
    RGBColor(mix(0), mix(1), mix(2))
}

/// The count matrix as the lecture draws it: blue cells, darker for larger counts, each
/// labelled with its pair (context, next) and its count.
pub struct CountsFigure<'a> {
    pub counts: &'a [u32],
    pub vocab: &'a Vocab,
    pub context_len: usize,
    /// What the counts are of, for the title.
    pub source: &'a str,
}

impl CountsFigure<'_> {
    /// Rows and columns of the grid.
    fn shape(&self) -> (usize, usize) {
        let cols = self.vocab.len();
        (self.counts.len() / cols.max(1), cols)
    }

    /// The cell and label sizes in px and a note when the labels were shrunk or left out:
    /// cells of up to 40 px in a picture of about 1100 px (at least 2 px a cell), labels of 0.3
    /// cell, smaller when the longest label would not fit the cell's width.
    pub fn layout(&self) -> (u32, Option<f64>, Option<String>) {
        let ((rows, cols), largest) = (self.shape(), self.counts.iter().max().unwrap_or(&0));
        let longest = (self.context_len + 1).max(largest.to_string().len());
        let cell_px = (1100 / rows.max(cols).max(1)).clamp(2, 40) as u32;
        // A monospace glyph is about 0.6 em wide; keep 10% of the cell free.
        let wanted = 0.3 * cell_px as f64;
        let size = wanted.min(0.9 * cell_px as f64 / (0.6 * longest as f64));
        let label_px = (size >= SMALLEST_LABEL_PX).then_some(size);
        let note = match label_px {
            None => Some(format!(
                "labels left out: cells of {cell_px} px are too small for them"
            )),
            Some(size) if size < wanted => {
                Some(format!("labels shrunk to {size:.0} px to fit the cells"))
            }
            Some(_) => None,
        };
        (cell_px, label_px, note)
    }

    /// The picture as PNG or SVG bytes; an error when the grid has more than
    /// [`MAX_GRID_SIDE`] rows or columns.
    pub fn render(&self, format: Format) -> anyhow::Result<Vec<u8>> {
        let (rows, cols) = self.shape();
        anyhow::ensure!(
            rows.max(cols) <= MAX_GRID_SIDE,
            "the count matrix has {rows} x {cols} cells, too many to draw legibly (at least 2 px a cell, at most {MAX_GRID_SIDE} cells a side); its counts are the \"counts\" tensor of model.safetensors"
        );
        self.bytes(format)
    }
}

impl Figure for CountsFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let ((rows, cols), (cell_px, ..)) = (self.shape(), self.layout());
        let side = |cells: usize| cells as u32 * cell_px + 2 * MARGIN_PX;
        (side(cols), side(rows) + TITLE_PX)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let ((rows, cols), (cell_px, label_px, note)) = (self.shape(), self.layout());
        root.fill(&WHITE).map_err(draw_error)?;
        let text = |text: String, at, font: TextStyle| {
            root.draw(&Text::new(text, at, font)).map_err(draw_error)
        };
        let (left, top) = (MARGIN_PX as i32, (MARGIN_PX + TITLE_PX) as i32);
        let source = self.source;
        let title = format!("N[context, next]: {rows} x {cols} counts of {source}");
        let font = |family, size, gray| {
            (family, size)
                .into_font()
                .color(&RGBColor(gray, gray, gray))
        };
        text(title, (left, left), font("sans-serif", 18.0, 0))?;
        if let Some(note) = note {
            text(note, (left, left + 24), font("sans-serif", 14.0, 90))?;
        }
        let largest = self.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let cell = cell_px as i32;
        for (i, &count) in self.counts.iter().enumerate() {
            let (row, col) = ((i / cols) as i32, (i % cols) as i32);
            let (x, y) = (left + col * cell, top + row * cell);
            let shade = count as f64 / largest;
            let rectangle = Rectangle::new([(x, y), (x + cell, y + cell)], blues(shade).filled());
            root.draw(&rectangle).map_err(draw_error)?;
            let Some(size) = label_px else {
                continue;
            };
            // The lecture's gray, lighter on the darkest cells so that it stays readable.
            let gray = if shade > 0.45 { 215 } else { 128 };
            let font = font("monospace", size, gray);
            let mut pair = context_label(row as usize, self.vocab, self.context_len);
            pair.push(self.vocab.char(col as u32));
            let (center, middle) = (x + cell / 2, y + cell / 2);
            let above = font.pos(Pos::new(HPos::Center, VPos::Bottom));
            text(pair, (center, middle), above)?;
            let below = font.pos(Pos::new(HPos::Center, VPos::Top));
            text(count.to_string(), (center, middle + 1), below)?;
        }
        root.present().map_err(draw_error)
    }
}

/// The losses of the log against the step: the loss gradient descent minimizes, its data
/// part (the mean NLL), and the dev loss where the run measured one.
pub struct LossFigure<'a> {
    pub entries: &'a [LogEntry],
}

impl LossFigure<'_> {
    pub fn render(&self, format: Format) -> anyhow::Result<Vec<u8>> {
        let steps = self.entries.len();
        anyhow::ensure!(steps > 0, "the loss log has no steps to draw");
        self.bytes(format)
    }
}

impl Figure for LossFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 540)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_error)?;
        let first = self.entries.first().map_or(0, |e| e.step);
        let last = self.entries.last().map_or(0, |e| e.step).max(first + 1);
        let values = (self.entries.iter())
            .flat_map(|e| [e.loss.total, e.loss.data].into_iter().chain(e.dev_loss))
            .filter(|x| x.is_finite());
        let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let pad = ((high - low) * 0.05).max(1e-3);
        let mut chart = ChartBuilder::on(root)
            .caption("loss against step", ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(first as f64..last as f64, (low - pad)..(high + pad))
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("loss")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(draw_error)?;
        let series = [
            ("loss (NLL + reg * mean W^2)", RGBColor(33, 113, 181)),
            ("data loss (mean NLL)", RGBColor(230, 120, 20)),
            ("dev loss (mean NLL)", RGBColor(44, 160, 44)),
        ];
        for (k, (label, color)) in series.into_iter().enumerate() {
            // The dev loss where it was measured (and finite).
            let value = |e: &LogEntry| match k {
                0 => Some(e.loss.total),
                1 => Some(e.loss.data),
                _ => e.dev_loss.filter(|x| x.is_finite()),
            };
            let points: Vec<(f64, f64)> = (self.entries.iter())
                .filter_map(|e| Some((e.step as f64, value(e)?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            let line = LineSeries::new(points.iter().copied(), color.stroke_width(2));
            let legend =
                move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2));
            let drawn = chart.draw_series(line).map_err(draw_error)?;
            drawn.label(label).legend(legend);
            if label.starts_with("dev") {
                let dots = points.iter().map(|&p| Circle::new(p, 3, color.filled()));
                chart.draw_series(dots).map_err(draw_error)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw_error)?;
        root.present().map_err(draw_error)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blues_runs_from_white_to_dark_blue() {
        use super::{blues, RGBColor};
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert!(blues(0.5).0 < 247);
    }
}
