//! `plot counts` and `plot loss`: the files exist, have the promised size, and are not blank.

use crate::common;

use common::{json_lines, ok_stdout, one_line_error};

/// Width, height and the RGB(A) pixels of a PNG file.
fn decode(path: &std::path::Path) -> (u32, u32, Vec<u8>, usize) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels, info.color_type.samples())
}

/// How many pixels are not white, and how many distinct colors there are.
fn ink(pixels: &[u8], samples: usize) -> (usize, usize) {
    let colors: std::collections::HashSet<&[u8]> = pixels.chunks(samples).collect();
    let not_white = pixels
        .chunks(samples)
        .filter(|p| p[..3] != [255, 255, 255])
        .count();
    (not_white, colors.len())
}

#[test]
fn counts_and_loss_render_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("run");
    let work_str = work.to_str().unwrap();
    ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "5",
        "--samples",
        "0",
        "--work-dir",
        work_str,
    ]);
    let text = ok_stdout(&["plot", "counts", "--work-dir", work_str]);
    assert!(
        text.contains("counts.png") && text.contains("counts.svg"),
        "{text}"
    );
    assert!(
        !text.contains("note:"),
        "a 27 x 27 grid keeps its labels: {text}"
    );
    let (width, height, pixels, samples) = decode(&work.join("counts.png"));
    // 27 cells of 40 px and the margins and title band.
    assert_eq!((width, height), (27 * 40 + 24, 27 * 40 + 24 + 56));
    let (not_white, colors) = ink(&pixels, samples);
    assert!(
        not_white > (width * height / 2) as usize,
        "{not_white} pixels of ink"
    );
    assert!(
        colors > 50,
        "{colors} colors: shades of blue and anti-aliased text"
    );
    let svg = std::fs::read_to_string(work.join("counts.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
    assert!(
        svg.contains("\n.a\n") && svg.contains("\nn.\n"),
        "pair labels"
    );

    let loss_png = dir.path().join("pictures/loss.png");
    let loss_svg = dir.path().join("loss.svg");
    ok_stdout(&[
        "plot",
        "loss",
        "--work-dir",
        work_str,
        "--output",
        loss_png.to_str().unwrap(),
        "--output",
        loss_svg.to_str().unwrap(),
    ]);
    let (width, height, pixels, samples) = decode(&loss_png);
    assert_eq!((width, height), (900, 540));
    let (not_white, colors) = ink(&pixels, samples);
    assert!(
        not_white > 2_000 && colors > 10,
        "{not_white} pixels, {colors} colors"
    );
    let svg = std::fs::read_to_string(&loss_svg).unwrap();
    assert!(
        svg.contains("<polyline") || svg.contains("<path"),
        "a line is drawn"
    );
}

#[test]
fn a_large_grid_says_its_labels_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("run");
    let work_str = work.to_str().unwrap();
    ok_stdout(&[
        "train",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--samples",
        "0",
        "--context",
        "2",
        "--work-dir",
        work_str,
    ]);
    let out = dir.path().join("trigram.png");
    let lines = json_lines(&[
        "plot",
        "counts",
        "--work-dir",
        work_str,
        "--output",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(lines[0]["note"]
        .as_str()
        .unwrap()
        .contains("labels left out"));
    let (width, height, pixels, samples) = decode(&out);
    assert_eq!(width, 27 * 2 + 24);
    assert_eq!(height, 729 * 2 + 24 + 56);
    assert!(ink(&pixels, samples).0 > 20_000);
}

#[test]
fn an_unknown_picture_format_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let error = one_line_error(&[
        "plot",
        "counts",
        "--work-dir",
        dir.path().to_str().unwrap(),
        "--output",
        "x.jpg",
    ]);
    assert!(
        error.contains("x.jpg: give a file name ending in .png or .svg"),
        "{error}"
    );
}
