//! Helpers shared by the model tests: deterministic random weights and installed model files.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

/// A deterministic source of small random weights (a linear congruential generator: tests
/// need repeatable tensors, not good randomness).
pub struct Weights {
    state: u64,
    scale: f32,
}

impl Weights {
    /// Values uniform in `[-scale/2, scale/2)` from `seed`.
    pub fn new(seed: u64, scale: f32) -> Self {
        Weights { state: seed, scale }
    }

    /// A tensor of `shape` on the CPU.
    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * self.scale
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }
}

/// A file or folder under the models folder, or `None` (with a "skipped" line) when
/// `scripts/setup-models.sh` has not installed it.
pub fn installed(rel: &str) -> Option<PathBuf> {
    let path = std::env::var_os("CABILDO_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipped: {} not installed (scripts/setup-models.sh)",
            path.display()
        );
        None
    }
}
