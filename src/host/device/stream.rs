//! The sample stream image made from IDX datasets: pixels (4 or 8 bits), or sensor
//! windows as the device quantises them.

use crate::device::{self, Backbone, Stream};
use crate::host::idx::Dataset;
use crate::learner::rng::Rng;
use anyhow::{ensure, Result};

/// What a stream image holds.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Source classes of each task, in order (task `t`'s classes become outputs
    /// `t * k .. (t + 1) * k`).
    pub tasks: Vec<Vec<u16>>,
    /// Training samples per task, shared evenly between its classes.
    pub train_per_task: usize,
    /// Held-out test samples per task, shared evenly between its classes.
    pub test_per_task: usize,
    /// Bits per pixel, 4 or 8.
    pub bits: u8,
    /// Seed of which samples are drawn and their order.
    pub seed: u64,
}

impl StreamSpec {
    /// Split-MNIST's five tasks of two digits, sorted.
    pub fn split(train_per_task: usize, test_per_task: usize, bits: u8, seed: u64) -> Self {
        StreamSpec {
            tasks: (0..5).map(|t| vec![2 * t, 2 * t + 1]).collect(),
            train_per_task,
            test_per_task,
            bits,
            seed,
        }
    }
}

/// The stream image of `spec` drawn from `train` (training records) and `test` (held-out
/// records); pixels are the datasets' values times 255.
pub fn stream_image(train: &Dataset, test: &Dataset, spec: &StreamSpec) -> Result<Vec<u8>> {
    ensure!(matches!(spec.bits, 4 | 8), "pixels are stored in 4 or 8 bits");
    stream_with(train, test, spec, |row, body| {
        let px = row.map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8);
        if spec.bits == 8 {
            body.extend(px.iter());
        } else {
            let nib: Vec<u8> = px.iter().map(|&p| ((u16::from(p) + 8) / 17) as u8).collect();
            body.extend(nib.chunks(2).map(|c| c[0] << 4 | c.get(1).copied().unwrap_or(0)));
        }
        Ok(())
    })
}

/// The stream image of `spec` for a backbone that takes sensor windows: each window
/// (`[T, C]`, time-major, as the datasets hold it) stored as the i8 bytes the device makes
/// of it ([`Backbone::quantise_window`], the backbone's own normalisation and step), 8
/// bits a value.
pub fn window_stream_image(
    train: &Dataset,
    test: &Dataset,
    spec: &StreamSpec,
    backbone: &Backbone<'_>,
) -> Result<Vec<u8>> {
    ensure!(backbone.takes_windows(), "the backbone takes pixels: use stream_image");
    ensure!(spec.bits == 8, "a window's values are stored in 8 bits");
    ensure!(
        train.x.ncols() == backbone.input(),
        "the windows have {} values, the backbone takes {}",
        train.x.ncols(),
        backbone.input()
    );
    let mut bytes = vec![0u8; backbone.input()];
    stream_with(train, test, spec, |row, body| {
        let values: Vec<f32> = row.to_vec();
        backbone
            .quantise_window(&values, &mut bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        body.extend_from_slice(&bytes);
        Ok(())
    })
}

/// A stream image of `spec`'s tasks with each sample's row stored by `encode`.
fn stream_with(
    train: &Dataset,
    test: &Dataset,
    spec: &StreamSpec,
    mut encode: impl FnMut(ndarray::ArrayView1<'_, f32>, &mut Vec<u8>) -> Result<()>,
) -> Result<Vec<u8>> {
    let order: Vec<u16> = spec.tasks.iter().flatten().copied().collect();
    ensure!(!order.is_empty() && order.len() <= 256, "1 to 256 classes");
    let width = train.x.ncols();
    ensure!(test.x.ncols() == width, "training and test samples differ in width");
    let mut rng = Rng::new(spec.seed);
    let mut body: Vec<u8> = order.iter().map(|&c| c as u8).collect();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    for classes in &spec.tasks {
        for (data, per_task) in [(train, spec.train_per_task), (test, spec.test_per_task)] {
            let mut picked = Vec::new();
            for (j, &c) in classes.iter().enumerate() {
                let mut pool: Vec<usize> = (0..data.len()).filter(|&i| data.y[i] == c).collect();
                let want = per_task / classes.len() + usize::from(j < per_task % classes.len());
                ensure!(
                    pool.len() >= want,
                    "class {c} has {} samples, {want} wanted",
                    pool.len()
                );
                rng.shuffle(&mut pool);
                let output = order.iter().position(|&o| o == c).expect("c is in order") as u8;
                picked.extend(pool[..want].iter().map(|&i| (output, i)));
            }
            rng.shuffle(&mut picked);
            for (label, i) in picked {
                body.push(label);
                encode(data.x.row(i), &mut body)?;
            }
        }
    }
    let mut image = b"ECST".to_vec();
    for v in [1u16, spec.tasks.len() as u16, order.len() as u16, u16::from(spec.bits)] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        width as u32,
        spec.train_per_task as u32,
        spec.test_per_task as u32,
        body.len() as u32,
        device::crc32(&body),
    ] {
        image.extend_from_slice(&v.to_le_bytes());
    }
    image.extend_from_slice(&body);
    Stream::parse(&image).map_err(|e| anyhow::anyhow!("the image written does not read back: {e}"))?;
    Ok(image)
}
