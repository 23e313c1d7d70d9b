//! Pictures of a run, drawn with plotters: the lecture's figure of the count matrix, and the
//! losses against steps. Text is rendered in pure Rust (ab_glyph) with the font built into the
//! binary (data/fonts/), so no system font library is needed. Output is PNG or SVG bytes.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::checkpoint::LogEntry;
use crate::data::Vocab;
use crate::model::context_label;

/// DejaVu Sans Mono (Bitstream Vera license, data/fonts/LICENSE-DejaVu.txt).
const FONT: &[u8] = include_bytes!("../data/fonts/DejaVuSansMono.ttf");

/// Labels smaller than this many pixels are left out.
const SMALLEST_LABEL_PX: f64 = 6.0;
/// The height of the title band above the grid.
const TITLE_PX: u32 = 56;
const MARGIN_PX: u32 = 12;

/// Why a picture could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: give a file name ending in .png or .svg")]
    UnknownFormat(String),
    #[error("the loss log has no steps to draw")]
    EmptyLog,
    #[error("drawing failed: {0}")]
    Draw(String),
    #[error(
        "the count matrix has {rows} x {cols} cells, too many to draw legibly (at least 2 px a cell, at most {MAX_GRID_SIDE} cells a side); its counts are the \"counts\" tensor of model.safetensors"
    )]
    TooLarge { rows: usize, cols: usize },
}

/// The most rows or columns a grid is drawn with: at 2 px a cell, a picture of about 2,000 px
/// a side (the 729 x 27 trigram table is drawn; a vocabulary of 1,025 symbols is not).
pub const MAX_GRID_SIDE: usize = 1024;

/// The two picture formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format a file name asks for by its extension.
    pub fn of_path(path: &Path) -> Result<Format, PlotError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => Err(PlotError::UnknownFormat(path.display().to_string())),
        }
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "monospace"] {
            plotters::style::register_font(family, FontStyle::Normal, FONT)
                .unwrap_or_else(|_| panic!("the built-in font is a valid TrueType file"));
        }
    });
}

fn draw_error<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError::Draw(format!("{e:?}"))
}

/// Draws with `draw` into a picture of the given size, as PNG or SVG bytes.
fn render(
    size: (u32, u32),
    format: Format,
    draw: impl Fn(&DrawingArea<BitMapBackend, Shift>) -> Result<(), PlotError>,
    draw_svg: impl Fn(&DrawingArea<SVGBackend, Shift>) -> Result<(), PlotError>,
) -> Result<Vec<u8>, PlotError> {
    register_font();
    match format {
        Format::Png => {
            let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                draw(&root)?;
                root.present().map_err(draw_error)?;
            }
            encode_png(&rgb, size)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw_svg(&root)?;
                root.present().map_err(draw_error)?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// RGB pixels, row by row, as a PNG file.
pub fn encode_png(rgb: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, PlotError> {
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
pub fn blues(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (247, 251, 255),
        (222, 235, 247),
        (198, 219, 239),
        (158, 202, 225),
        (107, 174, 214),
        (66, 146, 198),
        (33, 113, 181),
        (8, 81, 156),
        (8, 48, 107),
    ];
    let x = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// How the count grid is laid out: the cell size, the label size, and what the picture says
/// about its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct GridLayout {
    pub rows: usize,
    pub cols: usize,
    pub cell_px: u32,
    /// None when the labels are left out.
    pub label_px: Option<f64>,
    /// A note under the title when the labels were shrunk or left out.
    pub note: Option<String>,
}

impl GridLayout {
    /// Cells of up to 40 px in a picture of about 1100 px (at least 2 px a cell); labels of
    /// 0.3 cell, smaller when the longest label would not fit the cell's width.
    pub fn new(rows: usize, cols: usize, longest_label_chars: usize) -> GridLayout {
        let cell_px = (1100 / rows.max(cols).max(1)).clamp(2, 40) as u32;
        let cell = cell_px as f64;
        // A monospace glyph is about 0.6 em wide; keep 10% of the cell free.
        let fits = 0.9 * cell / (0.6 * longest_label_chars.max(1) as f64);
        let wanted = 0.3 * cell;
        let size = wanted.min(fits);
        let (label_px, note) = if size < SMALLEST_LABEL_PX {
            (
                None,
                Some(format!(
                    "labels left out: cells of {cell_px} px are too small for them"
                )),
            )
        } else if size < wanted {
            (
                Some(size),
                Some(format!("labels shrunk to {size:.0} px to fit the cells")),
            )
        } else {
            (Some(size), None)
        };
        GridLayout {
            rows,
            cols,
            cell_px,
            label_px,
            note,
        }
    }

    /// The picture's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        (
            self.cols as u32 * self.cell_px + 2 * MARGIN_PX,
            self.rows as u32 * self.cell_px + 2 * MARGIN_PX + TITLE_PX,
        )
    }
}

/// The count matrix as the lecture draws it: a grid of blue cells, darker for larger counts,
/// each labelled with its pair (context, next) and its count.
pub struct CountsFigure<'a> {
    pub counts: &'a [u32],
    pub vocab: &'a Vocab,
    pub context_len: usize,
    /// What the counts are of, for the title.
    pub source: &'a str,
}

impl CountsFigure<'_> {
    pub fn layout(&self) -> GridLayout {
        let cols = self.vocab.len();
        let rows = self.counts.len() / cols;
        let largest = self.counts.iter().copied().max().unwrap_or(0);
        let longest = (self.context_len + 1).max(largest.to_string().len());
        GridLayout::new(rows, cols, longest)
    }

    /// Whether the grid can be drawn: an error when it has more than [`MAX_GRID_SIDE`] rows
    /// or columns.
    pub fn check_size(&self) -> Result<(), PlotError> {
        let cols = self.vocab.len();
        let rows = self.counts.len() / cols.max(1);
        if rows.max(cols) > MAX_GRID_SIDE {
            return Err(PlotError::TooLarge { rows, cols });
        }
        Ok(())
    }

    /// The picture as PNG or SVG bytes.
    pub fn render(&self, format: Format) -> Result<Vec<u8>, PlotError> {
        self.check_size()?;
        let layout = self.layout();
        render(
            layout.size(),
            format,
            |root| self.draw(root, &layout),
            |root| self.draw(root, &layout),
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        layout: &GridLayout,
    ) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(draw_error)?;
        let v = self.vocab.len();
        let title = format!(
            "N[context, next]: {} x {} counts of {}",
            layout.rows, layout.cols, self.source
        );
        let title_style = ("sans-serif", 18.0).into_font().color(&BLACK);
        root.draw(&Text::new(
            title,
            (MARGIN_PX as i32, MARGIN_PX as i32),
            title_style,
        ))
        .map_err(draw_error)?;
        if let Some(note) = &layout.note {
            let note_style = ("sans-serif", 14.0)
                .into_font()
                .color(&RGBColor(90, 90, 90));
            root.draw(&Text::new(
                note.clone(),
                (MARGIN_PX as i32, MARGIN_PX as i32 + 24),
                note_style,
            ))
            .map_err(draw_error)?;
        }
        let largest = self.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
        let cell = layout.cell_px as i32;
        let top = (MARGIN_PX + TITLE_PX) as i32;
        let left = MARGIN_PX as i32;
        for (i, &count) in self.counts.iter().enumerate() {
            let (row, col) = ((i / v) as i32, (i % v) as i32);
            let (x, y) = (left + col * cell, top + row * cell);
            let shade = count as f64 / largest;
            root.draw(&Rectangle::new(
                [(x, y), (x + cell, y + cell)],
                blues(shade).filled(),
            ))
            .map_err(draw_error)?;
            if let Some(size) = layout.label_px {
                // The lecture's gray, lighter on the darkest cells so that it stays readable.
                let color = if shade > 0.45 {
                    RGBColor(215, 215, 215)
                } else {
                    RGBColor(128, 128, 128)
                };
                let mut pair = context_label(row as usize, self.vocab, self.context_len);
                pair.push(self.vocab.char(col as u32));
                let center = x + cell / 2;
                let middle = y + cell / 2;
                let font = ("monospace", size).into_font().color(&color);
                root.draw(&Text::new(
                    pair,
                    (center, middle),
                    font.pos(Pos::new(HPos::Center, VPos::Bottom)),
                ))
                .map_err(draw_error)?;
                let font = ("monospace", size).into_font().color(&color);
                root.draw(&Text::new(
                    count.to_string(),
                    (center, middle + 1),
                    font.pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(draw_error)?;
            }
        }
        Ok(())
    }
}

/// The losses of the log against the step: the loss gradient descent minimizes, the data
/// part of it (the mean NLL), and the dev loss where the run measured one.
pub struct LossFigure<'a> {
    pub entries: &'a [LogEntry],
}

impl LossFigure<'_> {
    pub const SIZE: (u32, u32) = (900, 540);

    pub fn render(&self, format: Format) -> Result<Vec<u8>, PlotError> {
        if self.entries.is_empty() {
            return Err(PlotError::EmptyLog);
        }
        render(
            Self::SIZE,
            format,
            |root| self.draw(root),
            |root| self.draw(root),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        root.fill(&WHITE).map_err(draw_error)?;
        let first = self.entries.first().map_or(0, |e| e.step);
        let last = self.entries.last().map_or(0, |e| e.step).max(first + 1);
        let values = self
            .entries
            .iter()
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
        type Series = (&'static str, RGBColor, fn(&LogEntry) -> f64);
        let series: [Series; 2] = [
            ("loss (NLL + reg * mean W^2)", RGBColor(33, 113, 181), |e| {
                e.loss.total
            }),
            ("data loss (mean NLL)", RGBColor(230, 120, 20), |e| {
                e.loss.data
            }),
        ];
        for (label, color, value) in series {
            chart
                .draw_series(LineSeries::new(
                    self.entries.iter().map(|e| (e.step as f64, value(e))),
                    color.stroke_width(2),
                ))
                .map_err(draw_error)?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        let dev: Vec<(f64, f64)> = self
            .entries
            .iter()
            .filter_map(|e| {
                e.dev_loss
                    .filter(|x| x.is_finite())
                    .map(|d| (e.step as f64, d))
            })
            .collect();
        if !dev.is_empty() {
            let color = RGBColor(44, 160, 44);
            chart
                .draw_series(LineSeries::new(dev.iter().copied(), color.stroke_width(2)))
                .map_err(draw_error)?
                .label("dev loss (mean NLL)")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart
                .draw_series(dev.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(draw_error)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(draw_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lecture_grid_is_labelled_and_a_large_one_is_not() {
        let small = GridLayout::new(27, 27, 4);
        assert_eq!(small.cell_px, 40);
        assert_eq!(small.label_px, Some(12.0));
        assert_eq!(small.note, None);
        let large = GridLayout::new(729, 27, 4);
        assert_eq!(large.label_px, None);
        assert!(large.note.unwrap().contains("left out"));
    }

    #[test]
    fn blues_runs_from_light_to_dark() {
        assert_eq!(blues(0.0), RGBColor(247, 251, 255));
        assert_eq!(blues(1.0), RGBColor(8, 48, 107));
        assert!(blues(0.5).0 < 247);
    }
}
